package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// pushFixture puts two task images into the store at storeDir and writes
// a recipe whose template stage emits their task bundles and whose export
// stage lays them out. It returns the recipe path and the images by
// instance id.
func pushFixture(t *testing.T, dir, storeDir, registry string) (string, map[string]schema.Image) {
	t.Helper()
	l, err := crane.Layer(map[string][]byte{"etc/os-release": []byte("ID=pushtest\n")})
	if err != nil {
		t.Fatal(err)
	}
	baseImg, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(dir, "base")
	p, err := layout.Write(baseDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(baseImg); err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	b := oci.NewBuilder(store, oci.Options{Offline: true})
	base, err := b.Base(ctx, oci.BaseSpec{Layout: baseDir})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]schema.Image{}
	bundles := map[string]string{}
	for _, id := range []string{"t1", "t2"} {
		tree, err := store.PutFiles(map[string]cache.File{"main.py": {Data: []byte("print('" + id + "')\n")}})
		if err != nil {
			t.Fatal(err)
		}
		img, err := b.WithTree(ctx, base, tree, "/testbed", oci.ConfigOptions{})
		if err != nil {
			t.Fatal(err)
		}
		images[id] = img
		body, err := json.Marshal(stages.TaskBundle{
			Instance: schema.TaskInstance{InstanceID: id, Repo: "push", TaskType: schema.TaskFix, Image: "pushtest@" + img.Digest},
			Image:    img, Start: tree, Solution: tree,
		})
		if err != nil {
			t.Fatal(err)
		}
		bundles[id] = string(body)
	}
	recipe := writeRecipe(t, dir, fmt.Sprintf(`name: pushtest
stages:
  names: {uses: list, with: {items: [t1, t2]}}
  bundles:
    uses: template
    foreach: names
    with:
      text: '{{if eq .Item "t1"}}%s{{else}}%s{{end}}'
  dataset: {uses: export, from: [bundles], with: {name: Push test, registry: "%s"}}
`, bundles["t1"], bundles["t2"], registry))
	return recipe, images
}

// dsbuildEnv is dsbuild with extra environment variables.
func dsbuildEnv(t *testing.T, dir string, env []string, args ...string) run {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
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

// push finds the last build's exported images and puts them in a real
// registry under the names the instances give, where skopeo sees the built
// digests and podman pulls the instances' image_name; a second push
// succeeds too. Credentials in the Docker config never reach the output.
func TestPushToARegistry(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	host := testenv.Registry(t)
	recipe, images := pushFixture(t, dir, storeDir, host+"/ns")

	if r := dsbuild(t, dir, "--cache", storeDir, "push", recipe); r.code != 1 || !strings.Contains(r.stderr, "no build") {
		t.Fatalf("push before any build: exit %d: %s", r.code, r.stderr)
	}
	if r := dsbuild(t, dir, "--cache", storeDir, "--out", "out", recipe); r.code != 0 {
		t.Fatalf("build: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "images", "index.json")); err != nil {
		t.Fatalf("no image layout published: %v", err)
	}
	imageNames := map[string]string{}
	jsonl, err := os.ReadFile(filepath.Join(dir, "out", "tasks", "instances.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(jsonl)), "\n") {
		var row schema.TaskRow
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		imageNames[row.InstanceID] = row.ImageName
	}

	const secret = "s3cret-Passw0rd"
	dockerConfig := filepath.Join(dir, "docker")
	os.MkdirAll(dockerConfig, 0o700)
	auth := base64.StdEncoding.EncodeToString([]byte("pusher:" + secret))
	os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	env := []string{"DOCKER_CONFIG=" + dockerConfig}

	for attempt := range 2 {
		r := dsbuildEnv(t, dir, env, "--cache", storeDir, "push", recipe, "--insecure")
		if r.code != 0 {
			t.Fatalf("push %d: exit %d: %s", attempt, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 {
			t.Fatalf("push printed %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "pushed 2 images to "+host+"/ns/push-test") {
			t.Errorf("push progress: %q", r.stderr)
		}
		for i, id := range []string{"t1", "t2"} {
			ref := host + "/ns/push-test:" + id
			if want := ref + "@" + images[id].Digest; lines[i] != want || imageNames[id] != want {
				t.Errorf("push line %q, instance image_name %q, want %q", lines[i], imageNames[id], want)
			}
			out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != images[id].Digest {
				t.Errorf("skopeo inspect %s: %v %s, want %s", ref, err, out, images[id].Digest)
			}
		}
		if strings.Contains(r.stdout+r.stderr, secret) || strings.Contains(r.stdout+r.stderr, auth) {
			t.Fatal("push printed the registry credentials")
		}
	}
	// podman takes an instance's image_name as it is.
	podmanRoot := t.TempDir()
	pull := exec.Command("podman", "--root", filepath.Join(podmanRoot, "root"), "--runroot", filepath.Join(podmanRoot, "run"),
		"--storage-driver", "vfs", "pull", "--tls-verify=false", imageNames["t1"])
	if out, err := pull.CombinedOutput(); err != nil {
		t.Fatalf("podman pull %s: %v\n%s", imageNames["t1"], err, out)
	}
}

// A registry that wants a login: without credentials push says to log in;
// with wrong ones it says the login was refused; neither prints them.
func TestPushLogin(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	const password = "right-Passw0rd"
	host := testenv.RegistryWithLogin(t, "pusher", password)
	recipe, _ := pushFixture(t, dir, storeDir, host+"/ns")
	if r := dsbuild(t, dir, "--cache", storeDir, "--out", "out", recipe); r.code != 0 {
		t.Fatalf("build: exit %d: %s", r.code, r.stderr)
	}
	login := func(pass string) []string {
		cfg := filepath.Join(t.TempDir(), "docker")
		os.MkdirAll(cfg, 0o700)
		body := `{"auths":{}}`
		if pass != "" {
			body = `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("pusher:"+pass)) + `"}}}`
		}
		os.WriteFile(filepath.Join(cfg, "config.json"), []byte(body), 0o600)
		return []string{"DOCKER_CONFIG=" + cfg}
	}
	for _, c := range []struct{ pass, want string }{
		{"", "no login found for the registry for " + host},
		{"wrong-Passw0rd", "the registry refused the login for " + host},
	} {
		r := dsbuildEnv(t, dir, login(c.pass), "--cache", storeDir, "push", recipe, "--insecure")
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || (c.pass != "" && strings.Contains(r.stderr, c.pass)) {
			t.Errorf("push with password %q: exit %d, want 1 and %q: %s", c.pass, r.code, c.want, r.stderr)
		}
	}
	if r := dsbuildEnv(t, dir, login(password), "--cache", storeDir, "push", recipe, "--insecure"); r.code != 0 || strings.Contains(r.stdout+r.stderr, password) {
		t.Fatalf("push with the right login: exit %d: %s", r.code, r.stderr)
	}
	// A registry that is not there: exit 1, naming it.
	recipe, _ = pushFixture(t, dir, filepath.Join(dir, "store2"), "127.0.0.1:1/ns")
	if r := dsbuild(t, dir, "--cache", filepath.Join(dir, "store2"), "--out", "out2", recipe); r.code != 0 {
		t.Fatalf("build: exit %d: %s", r.code, r.stderr)
	}
	r := dsbuild(t, dir, "--cache", filepath.Join(dir, "store2"), "push", recipe, "--insecure")
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("push to nowhere: exit %d: %s", r.code, r.stderr)
	}
}

// Usage mistakes exit 2 without touching a registry.
func TestPushUsage(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: small\nstages:\n  w: {uses: list, with: {items: [a]}}\n")
	for _, args := range [][]string{
		{"push"},
		{"push", recipe, "--registry", "127.0.0.1:5000/ns"},
		{"push", recipe, "--no-such-flag"},
		{"push", filepath.Join(dir, "missing.yaml")},
	} {
		if r := dsbuild(t, dir, append([]string{"--cache", "store"}, args...)...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
	// A recipe without export stages: exit 1 saying so.
	if r := dsbuild(t, dir, "--cache", "store", recipe); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := dsbuild(t, dir, "--cache", "store", "push", recipe); r.code != 1 || !strings.Contains(r.stderr, "no export stage") {
		t.Fatalf("push without export: exit %d: %s", r.code, r.stderr)
	}
	// An export without a registry names its images localhost/...: push
	// says how to name a registry instead of pushing elsewhere.
	exp, _ := pushFixture(t, dir, filepath.Join(dir, "store3"), "")
	if r := dsbuild(t, dir, "--cache", filepath.Join(dir, "store3"), "--out", "out3", exp); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := dsbuild(t, dir, "--cache", filepath.Join(dir, "store3"), "push", exp); r.code != 2 || !strings.Contains(r.stderr, "registry: HOST[:PORT]/NAMESPACE") {
		t.Fatalf("push of localhost images: exit %d: %s", r.code, r.stderr)
	}
}

// The exported images are found through the record even when the store
// lost the image's unpacked layers: the published layout supplies them.
func TestExportedImagesFallBackToThePublishedLayout(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	recipe, images := pushFixture(t, dir, storeDir, "127.0.0.1:5000/ns")
	if r := dsbuild(t, dir, "--cache", storeDir, "--out", filepath.Join(dir, "out"), recipe); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	store, err := cache.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Remove the uncompressed layer of t1's tree layer from the store.
	layer, err := cache.ParseDigest(images["t1"].Layers[1])
	if err != nil {
		t.Fatal(err)
	}
	removed := os.Remove(filepath.Join(storeDir, "blobs", layer.Hex()[:2], layer.Hex())) == nil
	if !removed || store.Has(layer) {
		t.Fatalf("could not remove layer blob %s", layer)
	}
	if _, err := oci.Lookup(store, images["t1"].Digest); err == nil {
		t.Fatal("lookup succeeded without the layer")
	}
	places, err := exportedImages(context.Background(), store, "pushtest", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(places) != 1 {
		t.Fatalf("places %+v", places)
	}
	got := places[0].images
	if got["t1"].Digest != images["t1"].Digest || got["t2"].Digest != images["t2"].Digest || !store.Has(layer) {
		t.Fatalf("images %+v, layer restored %v", got, store.Has(layer))
	}
	var rec build.Record
	body, _, _ := store.LatestRecord("pushtest")
	json.Unmarshal(body, &rec)
	if len(rec.Published) != 1 {
		t.Fatalf("published %v", rec.Published)
	}
}

// inspect summarises a Parquet file; a missing file is a usage error, a
// file that is not Parquet a failure.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	recipe, _ := pushFixture(t, dir, storeDir, "")
	if r := dsbuild(t, dir, "--cache", storeDir, "--out", "out", recipe); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	shard := filepath.Join(dir, "out", "tasks", "train-00000-of-00001.parquet")
	r := dsbuild(t, dir, "inspect", shard, "--rows", "1")
	if r.code != 0 {
		t.Fatalf("inspect: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"instance_id", `"t1"`, "dsbuild"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, `"t2"`) {
		t.Errorf("--rows 1 printed the second row:\n%s", r.stdout)
	}
	if r := dsbuild(t, dir, "inspect", filepath.Join(dir, "nope.parquet")); r.code != 2 {
		t.Errorf("missing file: exit %d", r.code)
	}
	if r := dsbuild(t, dir, "inspect"); r.code != 2 {
		t.Errorf("no file: exit %d", r.code)
	}
	if r := dsbuild(t, dir, "inspect", filepath.Join(dir, "out", "README.md")); r.code != 1 {
		t.Errorf("not parquet: exit %d: %s", r.code, r.stderr)
	}
}

func TestPushNeverEchoesCredentials(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, "name: p\nstages:\n  w: {uses: list, with: {items: [a]}}\n  d: {uses: export, from: [w], with: {registry: \"user:s3cr3t-token@127.0.0.1:5000/ns\"}}\n")
	r := dsbuild(t, dir, "--cache", "store", recipe)
	if r.code != 2 || !strings.Contains(r.stderr, "must not carry credentials") {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cr3t-token") {
		t.Fatalf("the password was printed: %s%s", r.stdout, r.stderr)
	}
}

// Ctrl-C during a push (here: a registry that accepts connections and
// never answers) stops it with exit status 130.
func TestPushInterrupted(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
			accepted <- struct{}{}
		}
	}()
	recipe, _ := pushFixture(t, dir, storeDir, ln.Addr().String()+"/ns")
	if r := dsbuild(t, dir, "--cache", storeDir, "--out", "out", recipe); r.code != 0 {
		t.Fatalf("build: exit %d: %s", r.code, r.stderr)
	}
	cmd := exec.Command(binary, "--cache", storeDir, "push", recipe, "--insecure")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-accepted // the push is talking to the registry
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "dsbuild: interrupted") {
		t.Fatalf("interrupted push: %v, want exit 130: %s", err, stderr.String())
	}
}
