package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsbuild-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "dsbuild")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type run struct {
	stdout, stderr string
	code           int
}

func dsbuild(t *testing.T, dir string, args ...string) run {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{so.String(), se.String(), code}
}

// A recipe with enough nodes that a build takes a noticeable time.
const bigRecipe = `name: big
stages:
  words: {uses: list, with: {count: 400}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  shout: {uses: template, foreach: greet, with: {text: "{{.Input}}!"}}
  out:   {uses: bundle, from: [shout]}
`

func writeRecipe(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTrees(t *testing.T, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("outputs differ: %d files vs %d files", len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("outputs differ at %s", k)
		}
	}
}

func TestSIGKILLedBuildsResumeToIdenticalOutput(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, bigRecipe)

	clean := dsbuild(t, dir, "--cache", "clean-cache", "--out", "clean-out", recipe)
	if clean.code != 0 {
		t.Fatalf("clean build: %d %s", clean.code, clean.stderr)
	}
	want := readTree(t, filepath.Join(dir, "clean-out"))
	if len(want) != 401 { // 400 files + the .dsbuild-tree marker
		t.Fatalf("clean output has %d files", len(want))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 6 {
		cmd := exec.Command(binary, "--cache", "killed-cache", "--out", "killed-out", recipe)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("kill %d: %v", i, cmd.ProcessState)
	}
	final := dsbuild(t, dir, "--cache", "killed-cache", "--out", "killed-out", recipe)
	if final.code != 0 {
		t.Fatalf("resumed build: %d %s", final.code, final.stderr)
	}
	sameTrees(t, want, readTree(t, filepath.Join(dir, "killed-out")))
	v := dsbuild(t, dir, "--cache", "killed-cache", "cache", "verify")
	if v.code != 0 || !strings.Contains(v.stdout, ": 0 problems") {
		t.Fatalf("verify after kills: %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	again := dsbuild(t, dir, "--cache", "killed-cache", "--out", "killed-out", recipe)
	if !regexp.MustCompile(`shout\s+template\s+400\s+0\s+400\s`).MatchString(again.stdout) {
		t.Fatalf("a rebuild after the resume ran something:\n%s", again.stdout)
	}
}

func TestConcurrentBuildsShareOneStore(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, bigRecipe)
	var wg sync.WaitGroup
	results := make([]run, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = dsbuild(t, dir, "--cache", "shared", "--out", "out"+string(rune('a'+i)), recipe)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("build %d: %d %s", i, r.code, r.stderr)
		}
	}
	sameTrees(t, readTree(t, filepath.Join(dir, "outa")), readTree(t, filepath.Join(dir, "outb")))
	if v := dsbuild(t, dir, "--cache", "shared", "cache", "verify"); v.code != 0 {
		t.Fatalf("verify: %s", v.stdout)
	}
}

func TestBadRecipeExits2AndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: bad\nstages:\n  a: {uses: list, with: {itemz: [a]}}\n")
	r := dsbuild(t, dir, "--cache", "store", recipe)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if !strings.Contains(r.stderr, "recipe.yaml:3:26: stage \"a\" (list): unknown field \"itemz\"") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Fatalf("a bad recipe created the store")
	}
	if r := dsbuild(t, dir, "--cache", "store", "--no-such-flag", recipe); r.code != 2 {
		t.Fatalf("unknown flag: exit %d", r.code)
	}
	if r := dsbuild(t, dir, "--cache", "store", "cache", "gc", "--keep", "many"); r.code != 2 {
		t.Fatalf("bad value of a subcommand's flag: exit %d", r.code)
	}
	if r := dsbuild(t, dir, "--cache", "store", "plan"); r.code != 2 {
		t.Fatalf("plan without recipe: exit %d", r.code)
	}
}

// storeListing describes every file under a store: path -> size and
// sha256, to show that verify changed nothing.
func storeListing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if de.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%d %x", len(b), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// memoResults returns the result digest (hex) of every memo entry.
func memoResults(t *testing.T, store string) map[string]string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(store, "memo", "*", "*"))
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = strings.TrimPrefix(strings.TrimSpace(string(b)), "sha256:")
	}
	return out
}

// verify checks and changes nothing (exit 1 on problems); verify --repair
// moves corrupt blobs aside and drops the memo entries that reach them; a
// rebuild then restores the store.
func TestVerifyFindsAFlippedByte(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: small\nstages:\n  w: {uses: list, with: {items: [a, b, c]}}\n  t: {uses: template, foreach: w, with: {text: \"<{{.Input}}>\"}}\n")
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatal(r.stderr)
	}
	store := filepath.Join(dir, "store")
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 || !strings.Contains(v.stdout, ": 0 problems") {
		t.Fatalf("verify after a build: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	blobs, _ := filepath.Glob(filepath.Join(store, "blobs", "*", "*"))
	if len(blobs) == 0 {
		t.Fatal("no blobs")
	}
	// Two corrupt blobs: any one, and the result of a memo entry.
	var key, result string
	for k, d := range memoResults(t, store) {
		if d != filepath.Base(blobs[0]) {
			key, result = k, d
			break
		}
	}
	for _, p := range []string{blobs[0], filepath.Join(store, "blobs", result[:2], result)} {
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x40
		os.WriteFile(p, b, 0o644)
	}
	before := storeListing(t, store)
	r := dsbuild(t, dir, "--cache", "store", "cache", "verify")
	for _, want := range []string{"corrupt blob sha256:" + filepath.Base(blobs[0]), "corrupt blob sha256:" + result, "bad memo entry " + key} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	if r.code != 1 || strings.Contains(r.stdout, "quarantine") {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	after := storeListing(t, store)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("verify changed the store:\nbefore %v\nafter  %v", before, after)
	}

	r = dsbuild(t, dir, "--cache", "store", "cache", "verify", "--repair")
	if r.code != 0 || !regexp.MustCompile(`repaired: moved 2 blobs to quarantine/, removed [12] memo entries; 0 problems left`).MatchString(r.stdout) {
		t.Fatalf("verify --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(store, "memo", key[:2], key)); !os.IsNotExist(err) {
		t.Fatalf("verify --repair kept memo entry %s", key)
	}
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 {
		t.Fatalf("verify after repair: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	// A rebuild restores what was moved aside.
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 || !strings.Contains(v.stdout, ": 0 problems") {
		t.Fatalf("verify after rebuild: %s", v.stdout)
	}
	if r := dsbuild(t, dir, "--cache", "store", "cache", "verify", "extra"); r.code != 2 {
		t.Fatalf("verify with an argument: exit %d", r.code)
	}
}

// verify --repair refuses a store that a build (here: this test) has open.
func TestVerifyRepairNeedsTheStoreToItself(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: small\nstages:\n  w: {uses: list, with: {items: [a]}}\n")
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatal(r.stderr)
	}
	s, err := cache.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dsbuild(t, dir, "--cache", "store", "cache", "verify", "--repair")
	if r.code != 1 || !strings.Contains(r.stderr, "needs the store to itself") {
		t.Fatalf("verify --repair beside a build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 {
		t.Fatalf("verify beside a build: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// Digests in a recipe's params (so in the build record's body) and in text
// a node produces are not references: the store is healthy.
func TestVerifyIgnoresDigestsInText(t *testing.T) {
	dir := t.TempDir()
	absent := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("never stored")))
	recipe := writeRecipe(t, dir, fmt.Sprintf("name: pins\nstages:\n  w: {uses: list, with: {items: [a, b]}}\n  t: {uses: template, foreach: w, with: {text: %q}}\n  u: {uses: template, foreach: w, with: {text: %q}}\n",
		absent, "{\"pin\": \"--hash="+absent+"\", \"item\": \"{{.Input}}\"}"))
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatal(r.stderr)
	}
	v := dsbuild(t, dir, "--cache", "store", "cache", "verify")
	if v.code != 0 || !strings.Contains(v.stdout, ": 0 problems") {
		t.Fatalf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

func TestGCKeepsTheLatestBuild(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: g\nstages:\n  w: {uses: list, with: {items: [a, b]}}\n  t: {uses: template, foreach: w, with: {text: \"1{{.Input}}\"}}\n")
	dsbuild(t, dir, "--cache", "store", recipe)
	writeRecipe(t, dir, "name: g\nstages:\n  w: {uses: list, with: {items: [a, b]}}\n  t: {uses: template, foreach: w, with: {text: \"2{{.Input}}\"}}\n")
	dsbuild(t, dir, "--cache", "store", recipe)
	r := dsbuild(t, dir, "--cache", "store", "cache", "gc")
	if r.code != 0 || !strings.Contains(r.stdout, "removed 1 build records, 2 memo entries") {
		t.Fatalf("gc: %d %s %s", r.code, r.stdout, r.stderr)
	}
	again := dsbuild(t, dir, "--cache", "store", recipe)
	if !regexp.MustCompile(`t\s+template\s+2\s+0\s+2\s`).MatchString(again.stdout) {
		t.Fatalf("after gc the latest build is no longer cached:\n%s", again.stdout)
	}
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 {
		t.Fatalf("verify after gc: %s", v.stdout)
	}
}

func TestCtrlCStopsCleanlyAndResumes(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, strings.Replace(bigRecipe, "count: 400", "count: 1500", 1))
	cmd := exec.Command(binary, "--cache", "store", "--json", recipe)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v after Ctrl-C, want 130", err)
	}
	if !strings.Contains(out.String(), `"status":"interrupted"`) {
		t.Fatalf("no interrupted done event in:\n%.2000s", out.String())
	}
	if v := dsbuild(t, dir, "--cache", "store", "cache", "verify"); v.code != 0 {
		t.Fatalf("verify after Ctrl-C: %s", v.stdout)
	}
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatalf("resume: %s", r.stderr)
	}
}

// --version names the build: a module version or the commit built from,
// and the Go release.
func TestVersion(t *testing.T) {
	r := dsbuild(t, t.TempDir(), "--version")
	if r.code != 0 || !regexp.MustCompile(`^dsbuild version \S+( commit [0-9a-f]{12}(\+dirty)?)?.* go1\.\d+`).MatchString(r.stdout) {
		t.Fatalf("--version: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	if v := dsbuild(t, t.TempDir(), "version"); v.code != 0 || v.stdout != r.stdout {
		t.Fatalf("dsbuild version: exit %d: %q, want %q", v.code, v.stdout, r.stdout)
	}
}
