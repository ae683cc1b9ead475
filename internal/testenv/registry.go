package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry runs Debian's docker-registry (a real registry, distribution
// 2.8) on a free 127.0.0.1 port with its storage in a temporary directory,
// stops it when the test ends, and returns "127.0.0.1:PORT". A missing
// docker-registry fails the test with what to install.
func Registry(t *testing.T) string {
	t.Helper()
	return startRegistry(t, "", "")
}

// RegistryWithLogin is Registry with basic authentication: only user with
// password may pull or push (an htpasswd file with a bcrypt hash, as
// distribution requires).
func RegistryWithLogin(t *testing.T, user, password string) string {
	t.Helper()
	return startRegistry(t, user, password)
}

func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/docker-registry"); err != nil {
		t.Fatal("docker-registry not found: install it with `apt-get install docker-registry`")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yml")
	auth := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: dsbuild-test\n    path: %s\n", htpasswd)
	}
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, auth)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command("/usr/bin/docker-registry", "serve", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || user != "" && resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not come up on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
