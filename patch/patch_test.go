package patch

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
)

func openStore(t testing.TB) *cache.Store {
	t.Helper()
	st, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func putFiles(t testing.TB, st *cache.Store, files map[string]string) cache.Digest {
	t.Helper()
	m := map[string]cache.File{}
	for p, s := range files {
		m[p] = cache.File{Data: []byte(s)}
	}
	d, err := st.PutFiles(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// lcsLen is the textbook dynamic-programming LCS length, the reference the
// Myers script is checked against.
func lcsLen(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

func TestMyersIsMinimalAndValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		a := randLines(rng, rng.IntN(12), 4)
		b := randLines(rng, rng.IntN(12), 4)
		ops := diffLines(a, b)
		var gotA, gotB []string
		edits := 0
		for _, o := range ops {
			if o.kind != opInsert {
				gotA = append(gotA, o.line)
			}
			if o.kind != opDelete {
				gotB = append(gotB, o.line)
			}
			if o.kind != opEqual {
				edits++
			}
		}
		if strings.Join(gotA, "|") != strings.Join(a, "|") || strings.Join(gotB, "|") != strings.Join(b, "|") {
			t.Fatalf("script does not rebuild inputs: a=%q b=%q ops=%v", a, b, ops)
		}
		if want := len(a) + len(b) - 2*lcsLen(a, b); edits != want {
			t.Fatalf("a=%q b=%q: %d edits, minimal is %d", a, b, edits, want)
		}
	}
}

func randLines(rng *rand.Rand, n, alphabet int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("l%d\n", rng.IntN(alphabet))
	}
	return out
}

func TestMyersFallsBackBeyondMaxDistance(t *testing.T) {
	var a, b []string
	for i := 0; i < maxEditDistance; i++ {
		a = append(a, fmt.Sprintf("a%d\n", i))
		b = append(b, fmt.Sprintf("b%d\n", i))
	}
	a = append(a, "same\n")
	b = append([]string{"same\n"}, b...)
	ops := diffLines(a, b)
	var n int
	for _, o := range ops {
		if o.kind != opEqual {
			n++
		}
	}
	if n != 2*maxEditDistance+2 {
		t.Fatalf("fallback gave %d edits, want %d (delete all, insert all)", n, 2*maxEditDistance+2)
	}
}

func TestDiffFormat(t *testing.T) {
	st := openStore(t)
	from := putFiles(t, st, map[string]string{
		"calc.py":       "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n",
		"gone.txt":      "bye\n",
		"noeol.txt":     "x\ny",
		"same.txt":      "unchanged\n",
		"tests/test.py": "assert True\n",
	})
	to := putFiles(t, st, map[string]string{
		"calc.py":       "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
		"new.txt":       "hello\n",
		"noeol.txt":     "x\nz",
		"same.txt":      "unchanged\n",
		"tests/test.py": "assert False\n",
	})
	got, err := Diff(st, from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := `diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
 
 
 def sub(a, b):
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+hello
diff --git a/noeol.txt b/noeol.txt
--- a/noeol.txt
+++ b/noeol.txt
@@ -1,2 +1,2 @@
 x
-y
\ No newline at end of file
+z
\ No newline at end of file
diff --git a/tests/test.py b/tests/test.py
--- a/tests/test.py
+++ b/tests/test.py
@@ -1 +1 @@
-assert True
+assert False
`
	if got != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", got, want)
	}
	only, err := Diff(st, from, to, "tests/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(only, "diff --git a/tests/test.py") || strings.Count(only, "diff --git") != 1 {
		t.Fatalf("restricted diff:\n%s", only)
	}
	none, err := Diff(st, from, to, "calc")
	if err != nil || none != "" {
		t.Fatalf(`Diff restricted to "calc" = %q, %v; want "" (a prefix is a whole path component)`, none, err)
	}
	same, err := Diff(st, from, from)
	if err != nil || same != "" {
		t.Fatalf("diff of a tree with itself = %q, %v", same, err)
	}
}

func TestDiffHunkSplittingAndMerging(t *testing.T) {
	st := openStore(t)
	var a []string
	for i := 1; i <= 30; i++ {
		a = append(a, fmt.Sprintf("line %d\n", i))
	}
	b := append([]string(nil), a...)
	b[1] = "changed 2\n"   // hunk 1
	b[8] = "changed 9\n"   // 6 unchanged lines between: merged into hunk 1
	b[24] = "changed 25\n" // far away: hunk 2
	from := putFiles(t, st, map[string]string{"f": strings.Join(a, "")})
	to := putFiles(t, st, map[string]string{"f": strings.Join(b, "")})
	d, err := Diff(st, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(d, "\n@@ "); got != 2 {
		t.Fatalf("want 2 hunks, got %d:\n%s", got, d)
	}
	if !strings.Contains(d, "@@ -1,12 +1,12 @@\n") || !strings.Contains(d, "@@ -22,7 +22,7 @@\n") {
		t.Fatalf("unexpected hunk headers:\n%s", d)
	}
	back, err := Apply(st, from, d)
	if err != nil {
		t.Fatal(err)
	}
	if back != to {
		t.Fatal("Apply(from, Diff(from, to)) != to")
	}
}

func TestDiffModesSymlinksBinaryAndEmptyFiles(t *testing.T) {
	st := openStore(t)
	blob := func(s string) cache.Digest {
		d, err := st.Put([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := putFiles(t, st, map[string]string{"run.sh": "echo hi\n", "bin.dat": "a\x00b", "link": "was a file\n", "empty": ""})
	to, err := Edit(st, base, map[string]*cache.TreeEntry{
		"run.sh":    {Type: cache.TypeFile, Exec: true, Digest: blob("echo hi\n"), Size: 8},
		"bin.dat":   {Type: cache.TypeFile, Digest: blob("a\x00c"), Size: 3},
		"link":      {Type: cache.TypeSymlink, Target: "run.sh"},
		"empty":     nil,
		"new/empty": {Type: cache.TypeFile, Digest: blob(""), Size: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Diff(st, base, to)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"diff --git a/bin.dat b/bin.dat\nindex " + gitBlobHash([]byte("a\x00b")) + ".." + gitBlobHash([]byte("a\x00c")) + " 100644\nGIT binary patch\nliteral 3\n",
		"diff --git a/empty b/empty\ndeleted file mode 100644\ndiff --git a/link b/link\n",
		"diff --git a/link b/link\ndeleted file mode 100644\n--- a/link\n+++ /dev/null\n@@ -1 +0,0 @@\n-was a file\n",
		"diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+run.sh\n\\ No newline at end of file\n",
		"diff --git a/new/empty b/new/empty\nnew file mode 100644\ndiff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	// Everything round-trips, the binary file, symlink and modes included.
	got, err := Apply(st, base, d)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, d)
	}
	if got != to {
		rest, _ := Diff(st, got, to)
		t.Fatalf("after applying, remaining diff is:\n%s", rest)
	}
	// The content-less form git prints without --binary is refused.
	if _, err := Apply(st, base, "diff --git a/bin.dat b/bin.dat\nBinary files a/bin.dat and b/bin.dat differ\n"); err == nil || !strings.Contains(err.Error(), "bin.dat") || !strings.Contains(err.Error(), "binary") {
		t.Fatalf("Apply of a content-less binary section: err = %v, want an error naming bin.dat", err)
	}
}

// Binary files are written as git binary patches that real git applies and
// Apply applies, to the same tree: added, changed, deleted, turned to and
// from text, empty, longer than a base85 line and than a stored zlib block.
// A binary patch for other content is refused.
func TestBinaryPatchesApplyWithGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git not installed: apt-get install git")
	}
	st := openStore(t)
	big := make([]byte, 70000)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	from := map[string]string{"changed.bin": "\x00\x01\x02 old", "gone.bin": "\x00gone", "totext": "\x00was binary",
		"tobin.txt": "was text\n", "keep.txt": "k\n"}
	to := map[string]string{"changed.bin": "\x00\x01\x02 new and longer than fifty-two bytes of payload, surely", "totext": "now text\n",
		"tobin.txt": "now\x00binary", "keep.txt": "k\n", "new/big.bin": string(big), "new/empty.pyc": "", "new/nul.bin": "\x00"}
	df, dt := putFiles(t, st, from), putFiles(t, st, to)
	d, err := Diff(st, df, dt)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d, "Binary files") || strings.Count(d, "GIT binary patch") != 6 {
		t.Fatalf("diff:\n%.3000s", d)
	}
	d2, _ := Diff(st, df, dt)
	if d2 != d {
		t.Fatal("binary diff is not deterministic")
	}
	got, err := Apply(st, df, d)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got != dt {
		rest, _ := Diff(st, got, dt)
		t.Fatalf("Apply gave another tree; remaining:\n%.2000s", rest)
	}
	dir := filepath.Join(t.TempDir(), "w")
	if err := st.Materialize(df, dir); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "p.diff")
	os.WriteFile(pf, []byte(d), 0o644)
	cmd := exec.Command(git, "apply", "--whitespace=nowarn", pf)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v\n%s", err, out)
	}
	if got, err := st.Snapshot(dir); err != nil || got != dt {
		rest, _ := Diff(st, got, dt)
		t.Fatalf("git apply gave another tree (%v); remaining:\n%.2000s", err, rest)
	}
	// The changed file's patch does not apply to other content.
	other := putFiles(t, st, map[string]string{"changed.bin": "\x00something else"})
	only, _ := Diff(st, df, dt, "changed.bin")
	if _, err := Apply(st, other, only); err == nil || !strings.Contains(err.Error(), "changed.bin") {
		t.Fatalf("binary patch applied to other content: %v", err)
	}
}

// TestRoundTripRandomEdits is the property Apply(from, Diff(from, to)) == to.
func TestRoundTripRandomEdits(t *testing.T) {
	st := openStore(t)
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := 0; iter < 120; iter++ {
		from := map[string]string{}
		for i := 0; i < 1+rng.IntN(5); i++ {
			from[fmt.Sprintf("d%d/f%d.txt", rng.IntN(3), i)] = randText(rng, rng.IntN(40))
		}
		to := map[string]string{}
		for p, s := range from {
			switch rng.IntN(5) {
			case 0: // deleted
			case 1: // unchanged
				to[p] = s
			default:
				to[p] = mutate(rng, s)
			}
		}
		for i := 0; i < rng.IntN(3); i++ {
			to[fmt.Sprintf("new%d/g%d.txt", rng.IntN(2), i)] = randText(rng, rng.IntN(10))
		}
		df, dt := putFiles(t, st, from), putFiles(t, st, to)
		d, err := Diff(st, df, dt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Apply(st, df, d)
		if err != nil {
			t.Fatalf("iteration %d: Apply: %v\ndiff:\n%s", iter, err, d)
		}
		if got != dt {
			back, _ := Diff(st, got, dt)
			t.Fatalf("iteration %d: round trip differs:\n%s\nremaining:\n%s", iter, d, back)
		}
		d2, _ := Diff(st, df, dt)
		if d2 != d {
			t.Fatal("Diff is not deterministic")
		}
	}
}

func randText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "line %d\n", rng.IntN(8))
	}
	if rng.IntN(4) == 0 {
		b.WriteString("tail without newline")
	}
	return b.String()
}

func mutate(rng *rand.Rand, s string) string {
	lines := splitLines([]byte(s))
	for k := 0; k < 1+rng.IntN(4); k++ {
		i := 0
		if len(lines) > 0 {
			i = rng.IntN(len(lines) + 1)
		}
		switch rng.IntN(3) {
		case 0:
			lines = append(lines[:i], append([]string{fmt.Sprintf("ins %d\n", rng.IntN(5))}, lines[i:]...)...)
		case 1:
			if i < len(lines) {
				lines = append(lines[:i], lines[i+1:]...)
			}
		case 2:
			if i < len(lines) {
				lines[i] = fmt.Sprintf("chg %d\n", rng.IntN(5))
			}
		}
	}
	out := strings.Join(lines, "")
	if rng.IntN(5) == 0 {
		out = strings.TrimSuffix(out, "\n")
	}
	return out
}

func TestApplyErrorsNameFileAndHunk(t *testing.T) {
	st := openStore(t)
	from := putFiles(t, st, map[string]string{"a.py": "one\ntwo\nthree\n"})
	to := putFiles(t, st, map[string]string{"a.py": "one\n2\nthree\n"})
	d, err := Diff(st, from, to)
	if err != nil {
		t.Fatal(err)
	}
	other := putFiles(t, st, map[string]string{"a.py": "one\nTWO\nthree\n"})
	_, err = Apply(st, other, d)
	if err == nil || !strings.Contains(err.Error(), "a.py") || !strings.Contains(err.Error(), "hunk 1") || !strings.Contains(err.Error(), `line 2 is "TWO\n"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = Apply(st, putFiles(t, st, map[string]string{"b.py": "x\n"}), d)
	if err == nil || !strings.Contains(err.Error(), "a.py") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	add, _ := Diff(st, putFiles(t, st, map[string]string{}), from)
	_, err = Apply(st, from, add)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("adding an existing file: err = %v", err)
	}
	for _, bad := range []string{
		"garbage\n",
		"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n",
		"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ nonsense @@\n",
		"diff --git a/x b/y\n",
		"diff --git a/x b/x\nsimilarity index 90%\n",
	} {
		if _, err := Apply(st, from, bad); err == nil {
			t.Errorf("Apply(%q) succeeded", bad)
		}
	}
}

// TestGitAppliesOurDiffs checks the format against real git: git apply
// accepts Diff's output and produces the same files.
func TestGitAppliesOurDiffs(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git not installed: apt-get install git")
	}
	st := openStore(t)
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := 0; iter < 10; iter++ {
		from := map[string]string{"keep.txt": "k\n"}
		for i := 0; i < 4; i++ {
			from[fmt.Sprintf("src/f%d.py", i)] = randText(rng, 30)
		}
		to := map[string]string{"keep.txt": "k\n", "added/n.py": randText(rng, 5)}
		for p, s := range from {
			if p != "src/f0.py" && p != "keep.txt" {
				to[p] = mutate(rng, s)
			}
		}
		df, dt := putFiles(t, st, from), putFiles(t, st, to)
		d, err := Diff(st, df, dt)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "w")
		if err := st.Materialize(df, dir); err != nil {
			t.Fatal(err)
		}
		pf := filepath.Join(t.TempDir(), "p.diff")
		os.WriteFile(pf, []byte(d), 0o644)
		cmd := exec.Command(git, "apply", "--whitespace=nowarn", pf)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git apply: %v\n%s\n%s", err, out, d)
		}
		got, err := st.Snapshot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got != dt {
			rest, _ := Diff(st, got, dt)
			t.Fatalf("git apply gave another tree; remaining:\n%s", rest)
		}
	}
}

func TestEdit(t *testing.T) {
	st := openStore(t)
	base := putFiles(t, st, map[string]string{"a/b/c.txt": "c\n", "a/d.txt": "d\n", "top": "t\n"})
	blob, _ := st.Put([]byte("new\n"))
	got, err := Edit(st, base, map[string]*cache.TreeEntry{
		"a/b/c.txt": nil,
		"x/y/z.txt": {Type: cache.TypeFile, Digest: blob, Size: 4},
		"missing":   nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := putFiles(t, st, map[string]string{"a/d.txt": "d\n", "top": "t\n", "x/y/z.txt": "new\n"})
	if got != want {
		files, _ := st.Files(got)
		t.Fatalf("Edit gave %v", files)
	}
	if _, err := Edit(st, base, map[string]*cache.TreeEntry{"top/under": {Type: cache.TypeFile, Digest: blob}}); err == nil || !strings.Contains(err.Error(), "top is a file") {
		t.Fatalf("writing under a file: err = %v", err)
	}
	if _, err := Edit(st, base, map[string]*cache.TreeEntry{"../x": nil}); err == nil {
		t.Fatal("Edit accepted ../x")
	}
}

func BenchmarkDiff1000Lines10Edits(b *testing.B) {
	st := openStore(b)
	rng := rand.New(rand.NewPCG(1, 1))
	var lines []string
	for i := 0; i < 1000; i++ {
		lines = append(lines, fmt.Sprintf("line %d %d\n", i, rng.IntN(1000)))
	}
	mod := append([]string(nil), lines...)
	for i := 0; i < 10; i++ {
		mod[rng.IntN(len(mod))] = "edited\n"
	}
	from := putFiles(b, st, map[string]string{"f.py": strings.Join(lines, "")})
	to := putFiles(b, st, map[string]string{"f.py": strings.Join(mod, "")})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Diff(st, from, to); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMyersWorstCase2000(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x, y := randLines(rng, 2000, 50), randLines(rng, 2000, 50)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		diffLines(x, y)
	}
}

func TestHunksReplaceToNewText(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for iter := 0; iter < 500; iter++ {
		a := randText(rng, rng.IntN(30))
		b := mutate(rng, a)
		cur := a
		// Applying the hunks from the last to the first at their lines
		// rebuilds b.
		hs := Hunks([]byte(a), []byte(b), iter%3)
		lines := splitLines([]byte(cur))
		for k := len(hs) - 1; k >= 0; k-- {
			h := hs[k]
			at := max(h.OldLine-1, 0)
			n := len(splitLines([]byte(h.Old)))
			if got := strings.Join(lines[at:at+n], ""); got != h.Old {
				t.Fatalf("hunk %d old text %q not at line %d (found %q)", k, h.Old, h.OldLine, got)
			}
			lines = append(append(append([]string(nil), lines[:at]...), splitLines([]byte(h.New))...), lines[at+n:]...)
		}
		if got := strings.Join(lines, ""); got != b {
			t.Fatalf("hunks of %q -> %q rebuild %q", a, b, got)
		}
	}
}
