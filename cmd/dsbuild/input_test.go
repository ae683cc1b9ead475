package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const publishRecipe = `name: pub
stages:
  words: {uses: list, with: {items: [a, b]}}
  out:   {uses: bundle, from: [words]}
`

// TestOutputFolderOfAnotherIsRefused: --out naming a folder dsbuild did not
// write is refused with status 2 before anything is touched (no store is
// made); --force replaces it; dsbuild's own output is replaced freely.
func TestOutputFolderOfAnotherIsRefused(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, publishRecipe)
	mine := filepath.Join(dir, "mine")
	os.MkdirAll(filepath.Join(mine, "notes"), 0o755)
	precious := filepath.Join(mine, "notes", "todo.txt")
	os.WriteFile(precious, []byte("keep me\n"), 0o644)

	res := dsbuild(t, dir, "--cache", "c", "--out", "mine", recipe)
	if res.code != exitBadInput || !strings.Contains(res.stderr, "which dsbuild did not write") {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me\n" {
		t.Fatalf("the folder was touched: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Fatal("a refused build made a store")
	}
	// The default output folder is checked too.
	os.MkdirAll(filepath.Join(dir, "out", "pub"), 0o755)
	os.WriteFile(filepath.Join(dir, "out", "pub", "x"), []byte("x"), 0o644)
	if res := dsbuild(t, dir, "--cache", "c", recipe); res.code != exitBadInput {
		t.Fatalf("default output folder: exit %d, stderr %q", res.code, res.stderr)
	}

	if res := dsbuild(t, dir, "--cache", "c", "--out", "mine", "--force", recipe); res.code != 0 {
		t.Fatalf("--force: exit %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(precious); err == nil {
		t.Fatal("--force kept the old folder")
	}
	if res := dsbuild(t, dir, "--cache", "c", "--out", "mine", recipe); res.code != 0 {
		t.Fatalf("rebuilding into dsbuild's own output: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestUsageMistakesExit2: help for what is not a command, an unknown cache
// command and a job count below 1 are usage mistakes (status 2) with a
// message; help for a command succeeds.
func TestUsageMistakesExit2(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, publishRecipe)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help", "validate"}, exitBadInput, `no help topic "validate": validate is a stage kind`},
		{[]string{"help", "nosuch"}, exitBadInput, `no help topic "nosuch"`},
		{[]string{"cache", "nosuch"}, exitBadInput, `unknown command "nosuch" for dsbuild cache`},
		{[]string{"cache", "help", "nosuch"}, exitBadInput, `no help topic "nosuch"`},
		{[]string{"-j", "-3", recipe}, exitBadInput, "want at least 1, got -3"},
		{[]string{"--jobs", "0", "build", recipe}, exitBadInput, "want at least 1, got 0"},
		{[]string{"build", recipe, "-j", "-1"}, exitBadInput, "want at least 1, got -1"},
		{[]string{"help", "build"}, 0, ""},
		{[]string{"help"}, 0, ""},
		{[]string{"cache"}, 0, ""},
		{[]string{"cache", "help", "verify"}, 0, ""},
	} {
		res := dsbuild(t, dir, append([]string{"--cache", "c"}, c.args...)...)
		if res.code != c.code || !strings.Contains(res.stderr, c.want) {
			t.Errorf("dsbuild %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), res.code, res.stderr, c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Error("a usage mistake made a store")
	}
}

// TestMistakesFoundAtLoadTouchNothing: a name the recipe does not define
// is reported with its position and status 2 before any store exists.
func TestMistakesFoundAtLoadTouchNothing(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "p"), 0o755)
	recipe := writeRecipe(t, dir, `name: refs
environments:
  python: {debian: {suite: bookworm, packages: [python3]}}
stages:
  repos:   {uses: repo, with: {paths: [p]}}
  checked: {uses: validate, foreach: repos, with: {environment: pyhton}}
`)
	res := dsbuild(t, dir, "--cache", "c", recipe)
	if res.code != exitBadInput || !strings.Contains(res.stderr, recipe+`:6:65: stage "checked" (validate): environment: "pyhton" is not one of the recipe's environments (python)`) {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Fatal("a recipe with a mistake made a store")
	}
}

// TestStoreIsPrivate: a store dsbuild creates is readable by its owner
// only, whatever the modes of what went into it.
func TestStoreIsPrivate(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, publishRecipe)
	if res := dsbuild(t, dir, "--cache", "c", recipe); res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	for _, p := range []string{"c", "c/blobs", "c/memo", "c/records", "c/tmp", "c/quarantine", "c/lock"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others can reach it", p, fi.Mode().Perm())
		}
	}
}
