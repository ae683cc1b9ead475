package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DebianSpec describes a Debian base built locally with mmdebstrap. Every
// Debian base has git and patch (requiredDebianPackages) besides what
// Packages lists, since agents and graders run git and patch in /testbed;
// the packages enter keys sorted and deduplicated, so their order in a
// recipe does not matter. Bases from a registry, a layout or an archive
// are used as they are: they need git and patch of their own.
type DebianSpec struct {
	// Suite is the Debian suite, "bookworm" if empty.
	Suite string `yaml:"suite" json:"suite,omitempty"`
	// Variant is mmdebstrap's --variant, "essential" if empty.
	Variant string `yaml:"variant" json:"variant,omitempty"`
	// Packages are installed on top of the variant (mmdebstrap --include),
	// with git and patch.
	Packages []string `yaml:"packages" json:"packages,omitempty"`
	// Mirror is the Debian mirror URL; if empty, the first Debian mirror in
	// the host's /etc/apt/sources.list*, else http://deb.debian.org/debian.
	Mirror string `yaml:"mirror" json:"mirror,omitempty"`
}

// BaseSpec says where an environment's base image comes from. Exactly one of
// Debian, Image, Layout and Archive must be set.
type BaseSpec struct {
	// Debian builds the base locally with mmdebstrap (the offline default).
	Debian *DebianSpec `yaml:"debian" json:"debian,omitempty"`
	// Image is a registry reference, e.g. "docker.io/library/python:3.12-slim",
	// pulled with credentials from the builder's keychain.
	Image string `yaml:"image" json:"image,omitempty"`
	// Layout is an OCI image layout directory, optionally followed by
	// ":TAG" to pick the manifest whose org.opencontainers.image.ref.name is
	// TAG; without a tag the layout must hold exactly one image.
	Layout string `yaml:"layout" json:"layout,omitempty"`
	// Archive is a docker-archive tarball (as written by `docker save`).
	Archive string `yaml:"archive" json:"archive,omitempty"`
	// Env entries (KEY=VALUE) are added to the base's environment,
	// replacing variables of the same name.
	Env []string `yaml:"env" json:"env,omitempty"`

	// pin is the digest of the content Layout or Archive names (see Pin),
	// "" until the spec is pinned. It is not part of the spec's encoding.
	pin string
}

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9.-]*$`)
	variantRE = regexp.MustCompile(`^(extract|custom|essential|apt|required|minbase|buildd|important|debootstrap|standard|-)$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.:=~/-]*$`)
	envRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// Validate checks that exactly one source is set and that its fields are well
// formed. It does not touch the network or the file system.
func (s BaseSpec) Validate() error {
	n := 0
	for _, set := range []bool{s.Debian != nil, s.Image != "", s.Layout != "", s.Archive != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("base image: exactly one of debian, image, layout or archive must be set (got %d)", n)
	}
	for _, e := range s.Env {
		if !envRE.MatchString(e) {
			return fmt.Errorf("base image: env entry %q is not KEY=VALUE", e)
		}
	}
	switch {
	case s.Debian != nil:
		return s.Debian.validate()
	case s.Image != "":
		if _, err := name.ParseReference(s.Image); err != nil {
			return fmt.Errorf("base image: image %q is not a valid registry reference: %v", s.Image, err)
		}
	case s.Layout != "":
		dir, _ := splitLayout(s.Layout)
		if dir == "" {
			return fmt.Errorf("base image: layout %q names no directory", s.Layout)
		}
	}
	return nil
}

func (d *DebianSpec) validate() error {
	if d.Suite != "" && !suiteRE.MatchString(d.Suite) {
		return fmt.Errorf("base image: debian suite %q is not a suite name", d.Suite)
	}
	if d.Variant != "" && !variantRE.MatchString(d.Variant) {
		return fmt.Errorf("base image: debian variant %q is not one mmdebstrap knows", d.Variant)
	}
	for _, p := range d.Packages {
		if !packageRE.MatchString(p) {
			return fmt.Errorf("base image: debian package %q is not a package name", p)
		}
	}
	if d.Mirror != "" && !strings.Contains(d.Mirror, "://") {
		return fmt.Errorf("base image: debian mirror %q is not a URL", d.Mirror)
	}
	return nil
}

// requiredDebianPackages are installed in every Debian base.
var requiredDebianPackages = []string{"git", "patch"}

// withRequiredPackages returns d with the required packages it does not
// name added to Packages, sorted and deduplicated. A listed package counts
// whatever version or architecture it names ("git=1:2.39.5-0+deb12u2").
func (d DebianSpec) withRequiredPackages() DebianSpec {
	pkgs := slices.Clone(d.Packages)
	for _, r := range requiredDebianPackages {
		if !slices.ContainsFunc(pkgs, func(p string) bool { return debianPackageName(p) == r }) {
			pkgs = append(pkgs, r)
		}
	}
	slices.Sort(pkgs)
	d.Packages = slices.Compact(pkgs)
	return d
}

// debianPackageName returns the package name of an --include entry,
// without a version, release or architecture.
func debianPackageName(p string) string {
	if i := strings.IndexAny(p, ":=/"); i >= 0 {
		return p[:i]
	}
	return p
}

// withDefaults returns d with the required packages added (see
// withRequiredPackages) and Suite, Variant and Mirror filled in.
func (d DebianSpec) withDefaults() DebianSpec {
	d = d.withRequiredPackages()
	if d.Suite == "" {
		d.Suite = "bookworm"
	}
	if d.Variant == "" {
		d.Variant = "essential"
	}
	if d.Mirror == "" {
		d.Mirror = hostMirror()
	}
	return d
}

// splitLayout splits "dir[:tag]". A colon only separates a tag when what
// follows it contains no slash, so "dir/with:colon/x" stays a directory.
func splitLayout(s string) (dir, tag string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// Resolve makes a relative Layout or Archive path relative to dir (a
// recipe's directory) and then pins the spec (see Pin). Debian and Image
// specs are left as they are. It fails if the spec is not valid or the
// content its path names cannot be read.
func (s *BaseSpec) Resolve(dir string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	switch {
	case s.Layout != "":
		p, tag := splitLayout(s.Layout)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if tag != "" {
			p += ":" + tag
		}
		s.Layout = p
	case s.Archive != "":
		if !filepath.IsAbs(s.Archive) {
			s.Archive = filepath.Join(dir, s.Archive)
		}
	}
	return s.Pin()
}

// Pin reads the content a Layout or Archive spec names and records its
// digest: for a layout, the digest of the image manifest the spec selects;
// for a docker-archive, the digest of its image's config (the image ID),
// which names every layer by the digest of its content. KeyView reports
// the pin instead of the path, and Builder.Base refuses content that no
// longer matches it, so what a build's keys name is what it runs on. A
// relative path is taken relative to the working directory. Debian and
// Image specs have nothing to pin.
func (s *BaseSpec) Pin() error {
	var (
		d   v1.Hash
		err error
	)
	switch {
	case s.Layout != "":
		_, d, err = selectLayout(s.Layout)
	case s.Archive != "":
		_, d, err = archiveImage(s.Archive)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	s.pin = d.String()
	return nil
}

// Pinned returns the digest Pin recorded, "" if the spec is not pinned.
func (s BaseSpec) Pinned() string { return s.pin }

// KeyView returns what of s can change the base image Builder.Base gives:
// a registry spec as it is (its encoding, unchanged); a Debian spec with
// its packages as installed (the required ones added, sorted and
// deduplicated: see DebianSpec); a layout or
// archive spec as the digest of its content and its env, not its path, so
// that replacing the content re-keys and moving it does not. A layout or
// archive spec that is not pinned is pinned (on a copy) first.
func (s BaseSpec) KeyView() (any, error) {
	if s.Debian != nil {
		d := s.Debian.withRequiredPackages()
		s.Debian = &d
		return s, nil
	}
	if s.Layout == "" && s.Archive == "" {
		return s, nil
	}
	if s.pin == "" {
		if err := s.Pin(); err != nil {
			return nil, err
		}
	}
	if s.Layout != "" {
		return struct {
			Manifest string   `json:"layout_manifest"`
			Env      []string `json:"env,omitempty"`
		}{s.pin, s.Env}, nil
	}
	return struct {
		Config string   `json:"archive_config"`
		Env    []string `json:"env,omitempty"`
	}{s.pin, s.Env}, nil
}

// selectLayout opens the OCI layout "dir[:tag]" and returns its index and
// the descriptor of the image manifest it selects: the one tagged tag, or
// the only one. The manifest's bytes are checked against its digest.
func selectLayout(spec string) (v1.ImageIndex, v1.Hash, error) {
	dir, tag := splitLayout(spec)
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, m := range im.Manifests {
		if tag == "" || m.Annotations["org.opencontainers.image.ref.name"] == tag {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		if tag != "" {
			return nil, v1.Hash{}, fmt.Errorf("base layout %s: %d images tagged %q (want exactly one)", dir, len(found), tag)
		}
		return nil, v1.Hash{}, fmt.Errorf("base layout %s holds %d images: name one as %s:TAG", dir, len(found), dir)
	}
	d := found[0].Digest
	if !found[0].MediaType.IsImage() {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: %s is a %s, not an image manifest", dir, d, found[0].MediaType)
	}
	raw, err := p.Bytes(d)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: manifest %s: %w", dir, d, err)
	}
	if got, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || got != d {
		return nil, v1.Hash{}, fmt.Errorf("base layout %s: manifest blob %s does not hash to its name", dir, d)
	}
	return idx, d, nil
}

// archiveImage opens the one image of the docker-archive at path and
// returns it with the digest of its config.
func archiveImage(path string) (v1.Image, v1.Hash, error) {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base archive %s: %w", path, err)
	}
	d, err := img.ConfigName()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("base archive %s: %w", path, err)
	}
	return img, d, nil
}

// defaultMirror is used when the host names no Debian mirror.
const defaultMirror = "http://deb.debian.org/debian"

// hostMirror returns the first Debian (non-security) mirror in the host's apt
// sources, one-line or deb822 format, else defaultMirror.
func hostMirror() string {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		if !strings.HasSuffix(f, ".list") && !strings.HasSuffix(f, ".sources") {
			continue
		}
		if m := mirrorIn(f); m != "" {
			return m
		}
	}
	return defaultMirror
}

func mirrorIn(file string) string {
	fh, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uris []string
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "deb" {
			// One-line format; skip an optional "[options]" field.
			i := 1
			for i < len(f) && strings.HasPrefix(f[i], "[") {
				for i < len(f) && !strings.HasSuffix(f[i], "]") {
					i++
				}
				i++
			}
			if i < len(f) {
				uris = []string{f[i]}
			}
		} else if v, ok := strings.CutPrefix(line, "URIs:"); ok {
			uris = strings.Fields(v)
		}
		for _, u := range uris {
			if strings.HasSuffix(strings.TrimSuffix(u, "/"), "/debian") {
				return strings.TrimSuffix(u, "/")
			}
		}
	}
	return ""
}

// Options configure a Builder.
type Options struct {
	// Offline forbids network access for registry bases: a base that is not
	// already in the store is an error.
	Offline bool
	// Keychain supplies registry credentials; authn.DefaultKeychain (the
	// Docker config) if nil.
	Keychain authn.Keychain
}

// ConfigOptions are what WithTree sets in the new image's config, and
// whether the tree it places is a git repository.
type ConfigOptions struct {
	// Labels are added to the config's labels and the manifest's
	// annotations (provenance: recipe, node key, dsbuild version).
	Labels map[string]string `json:"labels,omitempty"`
	// Env entries (KEY=VALUE) are added, replacing variables of the same name.
	Env []string `json:"env,omitempty"`
	// WorkingDir is the image's working directory; the tree's location if
	// empty.
	WorkingDir string `json:"working_dir,omitempty"`
	// GitRepository makes the placed tree a git repository: its .git
	// directory (see internal/gitrepo: one commit of the tree, fixed
	// identity, date and message, branch main, a clean index) goes into
	// the same layer after the tree's entries. The tree must not contain
	// a .git entry. Agents and graders run git checkout, git diff and
	// git apply there; the commit's id is gitrepo.Commit of the tree.
	GitRepository bool `json:"git_repository,omitempty"`
}

func (c ConfigOptions) validate() error {
	for _, e := range c.Env {
		if !envRE.MatchString(e) {
			return fmt.Errorf("image config: env entry %q is not KEY=VALUE", e)
		}
	}
	if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
		return fmt.Errorf("image config: working directory %q is not absolute", c.WorkingDir)
	}
	for k := range c.Labels {
		if k == "" {
			return errors.New("image config: empty label name")
		}
	}
	return nil
}

// mergeEnv returns base with each of add set, replacing same-name entries in
// place and appending new ones in order.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, e := range add {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, o := range out {
			if ok, _, _ := strings.Cut(o, "="); ok == k {
				out[i] = e
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}
