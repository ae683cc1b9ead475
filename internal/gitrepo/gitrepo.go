// Package gitrepo owns the git repository dsbuild puts around a task's
// start tree: it computes, in Go and without a git binary, the git objects
// of a store tree (cache.Store) and writes the .git directory of a
// repository whose single commit is that tree, as tar entries.
//
// The repository is a pure function of the tree, so its commit id is
// stable across machines and runs:
//
//   - blobs, trees and one commit, with git's object encoding and SHA-1 ids;
//     tree entries in git's order (a directory sorts as its name plus "/"),
//     modes 100644, 100755 (executable file), 120000 (symlink, the target
//     as content) and 40000; directories with no file below them are left
//     out, as git leaves them out;
//   - the commit has no parent, author and committer Identity at Date, and
//     message Message;
//   - branch Branch points to it and HEAD to the branch;
//   - .git holds HEAD, config (git init's defaults), info/exclude (the
//     byproducts of running Python and pytest), an index of version 2
//     with zero stat fields (git sees the stat data differ from the files
//     on disk, re-hashes them once, finds them unchanged, so `git status`
//     is clean) and zlib-compressed loose objects (klauspost/compress at
//     git's default loose level; bumping that module may change the bytes,
//     not the ids).
//
// A tree in which any path component is ".git" (in any letter case, or
// its NTFS short name "git~1") is refused with an error naming the path:
// git will not track such paths, and a top-level .git would clash with the
// repository itself. Exclude .git when snapshotting a checkout (the repo
// stage does by default).
//
// The package imports only cache. It knows nothing of images or stages.
package gitrepo

import (
	"archive/tar"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/klauspost/compress/zlib"
)

// Version names the bytes this package writes (object encoding, commit
// identity, date and message, index and .git layout, compression). Callers
// that memoise what WriteTar writes put it in their keys; bump it with any
// change to those bytes.
const Version = "gitrepo/2"

// The one commit of every repository.
const (
	// Branch is the branch that holds the commit; HEAD points to it.
	Branch = "main"
	// Identity is the commit's author and committer.
	Identity = "dsbuild <dsbuild@localhost>"
	// Message is the commit message.
	Message = "Task start state\n\nThe files of the task as the agent finds them, committed by dsbuild.\n"
)

// Date is the commit's author and committer date, in UTC.
var Date = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// looseLevel is the zlib level of loose objects (git's core.looseCompression
// default).
const looseLevel = zlib.BestSpeed

// ID is a git object id (SHA-1).
type ID [sha1.Size]byte

// String returns id as 40 lowercase hex digits, as git prints it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Git file modes.
const (
	modeFile    = 0o100644
	modeExec    = 0o100755
	modeSymlink = 0o120000
	modeDir     = 0o40000
)

// Commit returns the id of the commit WriteTar writes for tree: the
// repository's HEAD, and what a task's base_commit names.
func Commit(store *cache.Store, tree cache.Digest) (ID, error) {
	h := hasher{store: store}
	root, _, err := h.tree(tree, "")
	if err != nil {
		return ID{}, err
	}
	id, _ := commitObject(root)
	return id, nil
}

// WriteTar writes the .git directory of tree's repository to tw as entries
// below dir (a tar path such as "testbed/.git", which gets an entry of its
// own), in sorted order, owned by 0:0 with zero mtimes: directories 0755,
// loose objects 0444, other files 0644. It returns the commit id. Nothing
// is written if the tree cannot be made a repository.
func WriteTar(tw *tar.Writer, store *cache.Store, tree cache.Digest, dir string) (ID, error) {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" || path.Clean(dir) != dir || strings.HasPrefix(dir, "/") {
		return ID{}, fmt.Errorf("git repository: %q is not a clean relative tar path", dir)
	}
	objects := map[ID]object{}
	var index []indexEntry
	h := hasher{
		store: store,
		onFile: func(p string, mode uint32, id ID, size int64, e cache.TreeEntry) {
			index = append(index, indexEntry{path: p, mode: mode, id: id, size: size})
			objects[id] = object{kind: "blob", blob: e}
		},
		onTree: func(id ID, body []byte) { objects[id] = object{kind: "tree", body: body} },
	}
	root, _, err := h.tree(tree, "")
	if err != nil {
		return ID{}, err
	}
	if _, ok := objects[root]; !ok { // the empty tree: a commit needs it
		objects[root] = object{kind: "tree"}
	}
	commit, body := commitObject(root)
	objects[commit] = object{kind: "commit", body: body}

	w := tarWriter{tw: tw, dir: dir}
	w.dirEntry("")
	w.file("HEAD", 0o644, []byte("ref: refs/heads/"+Branch+"\n"))
	w.file("config", 0o644, []byte(gitConfig))
	slices.SortFunc(index, func(a, b indexEntry) int { return strings.Compare(a.path, b.path) })
	w.file("index", 0o644, indexFile(index))
	w.dirEntry("info")
	w.file("info/exclude", 0o644, []byte(gitExclude))
	w.dirEntry("objects")
	ids := make([]ID, 0, len(objects))
	for id := range objects {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	prefix := ""
	for _, id := range ids {
		s := id.String()
		if s[:2] != prefix {
			prefix = s[:2]
			w.dirEntry("objects/" + prefix)
		}
		z, err := loose(store, objects[id])
		if err != nil {
			return ID{}, fmt.Errorf("git object %s: %w", s, err)
		}
		w.file("objects/"+prefix+"/"+s[2:], 0o444, z)
	}
	w.dirEntry("objects/info")
	w.dirEntry("objects/pack")
	w.dirEntry("refs")
	w.dirEntry("refs/heads")
	w.file("refs/heads/"+Branch, 0o644, []byte(commit.String()+"\n"))
	w.dirEntry("refs/tags")
	if w.err != nil {
		return ID{}, w.err
	}
	return commit, nil
}

// gitExclude keeps what running Python and pytest leave in a work tree out
// of `git status` and `git add -A`, so that running a task's tests leaves
// the repository clean and an agent's diff holds only its own changes. It
// is .git/info/exclude, not a .gitignore: the task's files stay exactly the
// start tree.
const gitExclude = "# Written by dsbuild: what running the tests leaves behind.\n__pycache__/\n*.py[cod]\n.pytest_cache/\n.hypothesis/\n*.egg-info/\n"

// gitConfig is what `git init` writes on Linux.
const gitConfig = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n"

// object is one git object to write: a blob read from the store, or the
// body of a tree or commit.
type object struct {
	kind string
	blob cache.TreeEntry // file (content in the store) or symlink (target)
	body []byte
}

// loose returns the loose-object file of o: zlib of "<kind> <size>\0" and
// the content.
func loose(store *cache.Store, o object) ([]byte, error) {
	var buf bytes.Buffer
	z, err := zlib.NewWriterLevel(&buf, looseLevel)
	if err != nil {
		return nil, err
	}
	switch {
	case o.kind != "blob":
		fmt.Fprintf(z, "%s %d\x00", o.kind, len(o.body))
		z.Write(o.body)
	case o.blob.Type == cache.TypeSymlink:
		fmt.Fprintf(z, "blob %d\x00%s", len(o.blob.Target), o.blob.Target)
	default:
		if err := copyBlob(z, store, o.blob); err != nil {
			return nil, err
		}
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyBlob writes the git blob header and content of the file e to w,
// checking that the content is as long as the tree says.
func copyBlob(w io.Writer, store *cache.Store, e cache.TreeEntry) error {
	fmt.Fprintf(w, "blob %d\x00", e.Size)
	r, err := store.Open(e.Digest)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("blob %s holds %d bytes, its tree entry says %d", e.Digest, n, e.Size)
	}
	return nil
}

// hasher computes git ids of a store tree, calling onFile for every file
// and symlink (with its slash-separated path) and onTree for every tree
// object but empty ones. With no callbacks, the ids of whole trees are
// answered from memory when known.
type hasher struct {
	store  *cache.Store
	onFile func(path string, mode uint32, id ID, size int64, e cache.TreeEntry)
	onTree func(id ID, body []byte)
}

// gitEntry is one entry of a git tree object.
type gitEntry struct {
	name string
	mode uint32
	id   ID
}

// sortName is the name git sorts an entry by.
func (e gitEntry) sortName() string {
	if e.mode == modeDir {
		return e.name + "/"
	}
	return e.name
}

// tree returns the git id of the store tree d found at prefix (slash-
// separated, "" for the root), and whether it holds no file at all (git
// leaves such directories out).
func (h *hasher) tree(d cache.Digest, prefix string) (ID, bool, error) {
	collect := h.onFile != nil || h.onTree != nil
	if !collect {
		if t, ok := knownTrees.get(d); ok {
			return t.id, t.empty, nil
		}
	}
	t, err := h.store.GetTree(d)
	if err != nil {
		return ID{}, false, err
	}
	entries := make([]gitEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		p := e.Name
		if prefix != "" {
			p = prefix + "/" + e.Name
		}
		if strings.EqualFold(e.Name, ".git") || strings.EqualFold(e.Name, "git~1") {
			return ID{}, false, fmt.Errorf("git repository: the tree holds %q, which git cannot track (exclude .git from the snapshot)", p)
		}
		switch e.Type {
		case cache.TypeDir:
			id, empty, err := h.tree(e.Digest, p)
			if err != nil {
				return ID{}, false, err
			}
			if !empty {
				entries = append(entries, gitEntry{e.Name, modeDir, id})
			}
		case cache.TypeSymlink:
			id := hashObject("blob", []byte(e.Target))
			entries = append(entries, gitEntry{e.Name, modeSymlink, id})
			if h.onFile != nil {
				h.onFile(p, modeSymlink, id, int64(len(e.Target)), e)
			}
		case cache.TypeFile:
			id, err := h.blob(e)
			if err != nil {
				return ID{}, false, fmt.Errorf("git repository: %s: %w", p, err)
			}
			mode := uint32(modeFile)
			if e.Exec {
				mode = modeExec
			}
			entries = append(entries, gitEntry{e.Name, mode, id})
			if h.onFile != nil {
				h.onFile(p, mode, id, e.Size, e)
			}
		default:
			return ID{}, false, fmt.Errorf("git repository: %s: unknown tree entry type %q", p, e.Type)
		}
	}
	slices.SortFunc(entries, func(a, b gitEntry) int { return strings.Compare(a.sortName(), b.sortName()) })
	var body bytes.Buffer
	for _, e := range entries {
		body.WriteString(strconv.FormatUint(uint64(e.mode), 8))
		body.WriteByte(' ')
		body.WriteString(e.name)
		body.WriteByte(0)
		body.Write(e.id[:])
	}
	id := hashObject("tree", body.Bytes())
	empty := len(entries) == 0
	if h.onTree != nil && !empty {
		h.onTree(id, body.Bytes())
	}
	knownTrees.put(d, treeID{id, empty})
	return id, empty, nil
}

// blob returns the git id of the file e, from memory when known.
func (h *hasher) blob(e cache.TreeEntry) (ID, error) {
	if id, ok := knownBlobs.get(e.Digest); ok {
		return id, nil
	}
	s := sha1.New()
	if err := copyBlob(s, h.store, e); err != nil {
		return ID{}, err
	}
	var id ID
	s.Sum(id[:0])
	knownBlobs.put(e.Digest, id)
	return id, nil
}

// hashObject returns the git id of an object of kind with body.
func hashObject(kind string, body []byte) ID {
	s := sha1.New()
	fmt.Fprintf(s, "%s %d\x00", kind, len(body))
	s.Write(body)
	var id ID
	s.Sum(id[:0])
	return id
}

// commitObject returns the id and body of the commit of tree.
func commitObject(tree ID) (ID, []byte) {
	when := strconv.FormatInt(Date.Unix(), 10) + " +0000"
	body := []byte("tree " + tree.String() + "\n" +
		"author " + Identity + " " + when + "\n" +
		"committer " + Identity + " " + when + "\n" +
		"\n" + Message)
	return hashObject("commit", body), body
}
