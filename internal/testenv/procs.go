package testenv

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ProcessesNaming returns the processes (pid -> command line) whose command
// line or environment contains s, the calling process excepted: what a test
// that kills dsbuild checks is gone afterwards.
func ProcessesNaming(s string) map[int]string {
	out := map[int]string{}
	des, _ := os.ReadDir("/proc")
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", de.Name(), "environ"))
		if strings.Contains(string(cmdline), s) || strings.Contains(string(environ), s) {
			out[pid] = strings.ReplaceAll(string(cmdline), "\x00", " ")
		}
	}
	return out
}

// MountsNaming returns the mount points whose path contains s in the mount
// table file (/proc/<pid>/mountinfo).
func MountsNaming(file, s string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.Contains(fields[4], s) {
			out = append(out, fields[4])
		}
	}
	return out
}

// HostMountsNaming is MountsNaming of this process's mount table.
func HostMountsNaming(s string) []string { return MountsNaming("/proc/self/mountinfo", s) }

// WaitFor polls cond every 100 ms for up to limit and reports whether it
// became true. Tests give it generous limits: it waits for a condition, it
// does not time anything.
func WaitFor(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitWhileRunning waits up to five minutes for cond while a helper
// process runs (done is closed when it ends), failing the test if the
// helper ends first or cond never holds; what names the awaited event.
func WaitWhileRunning(t *testing.T, done <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	ended := false
	ok := WaitFor(5*time.Minute, func() bool {
		select {
		case <-done:
			ended = true
			return true
		default:
		}
		return cond()
	})
	if ended || !ok {
		t.Fatalf("%s never happened (helper ended: %v)", what, ended)
	}
}

// HangingMirror serves HTTP that never finishes on 127.0.0.1: every
// response trickles one byte a second (of a length apt accepts for a
// Release file), so apt (and mmdebstrap) wait on it for as long as it runs,
// as on a stalled mirror. It reports how many requests it received.
func HangingMirror(t testing.TB) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				requests.Add(1)
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5000000\r\n\r\n"))
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/debian", &requests
}
