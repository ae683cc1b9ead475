package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols x rows and returns its master
// and the path of its slave.
func openPTY(t *testing.T, cols, rows int) (*os.File, string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}); err != nil {
		t.Fatal(err)
	}
	return master, "/dev/pts/" + strconv.Itoa(n)
}

// screen is the little of a terminal the live table uses: printing with
// wrap at the last column, \r, \n, cursor up (ESC [ n A), erase below
// (ESC [ J) and erase line (ESC [ K).
type screen struct {
	cols     int
	lines    [][]rune
	row, col int
}

func (s *screen) line() []rune {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, nil)
	}
	return s.lines[s.row]
}

func (s *screen) write(out string) {
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch ch := rs[i]; {
		case ch == '\r':
			s.col = 0
		case ch == '\n':
			s.row++
		case ch == 0x1b && i+1 < len(rs) && rs[i+1] == '[':
			j := i + 2
			for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9' || rs[j] == ';') {
				j++
			}
			if j == len(rs) {
				return
			}
			n, err := strconv.Atoi(string(rs[i+2 : j]))
			if err != nil {
				n = 1
			}
			switch rs[j] {
			case 'A':
				s.row = max(0, s.row-n)
			case 'J':
				l := s.line()
				s.lines[s.row] = l[:min(len(l), s.col)]
				s.lines = s.lines[:s.row+1]
			case 'K':
				l := s.line()
				s.lines[s.row] = l[:min(len(l), s.col)]
			}
			i = j
		default:
			if s.col == s.cols {
				s.row++
				s.col = 0
			}
			l := s.line()
			for len(l) <= s.col {
				l = append(l, ' ')
			}
			l[s.col] = ch
			s.lines[s.row] = l
			s.col++
		}
	}
}

// The live table fits an 80-column terminal: run in a real pseudo-terminal
// and replayed on an 80-column screen, it leaves exactly one table, however
// long the stage names. On a narrower terminal its lines are cut rather
// than wrapped, which would leave a stale copy at every redraw.
func TestLiveTableFitsTheTerminal(t *testing.T) {
	for _, cols := range []int{80, 50} {
		t.Run(strconv.Itoa(cols), func(t *testing.T) { testLiveTable(t, cols) })
	}
}

func testLiveTable(t *testing.T, cols int) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, `name: tty
stages:
  words_with_a_rather_long_stage_name: {uses: list, with: {count: 1000}}
  greet: {uses: template, foreach: words_with_a_rather_long_stage_name, with: {text: "hello {{.Input}}"}}
  shout_every_greeting_very_loudly: {uses: template, foreach: greet, with: {text: "{{.Input}}!"}}
`)
	master, slave := openPTY(t, cols, 40)
	tty, err := os.OpenFile(slave, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--cache", "store", recipe)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&out, master) // ends with EIO when the last slave closes
		close(copied)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("build in a terminal: %v\n%s", err, out.String())
	}
	<-copied
	sc := &screen{cols: cols}
	sc.write(out.String())
	headers := 0
	for _, l := range sc.lines {
		if strings.HasPrefix(string(l), "STAGE ") {
			headers++
		}
	}
	if headers != 2 { // the live table's and the summary's
		t.Errorf("%d table headers on the screen, want the live one and the summary's:\n%s", headers, screenText(sc))
	}
	if !strings.Contains(out.String(), "\x1b[") {
		t.Fatalf("no live table drawn:\n%q", out.String())
	}
	if cols < 80 {
		return
	}
	for _, want := range []string{"words_with_a_ra…", "shout_every_gre…"} {
		if !strings.Contains(screenText(sc), want) {
			t.Errorf("screen lacks %q:\n%s", want, screenText(sc))
		}
	}
}

func screenText(s *screen) string {
	var b strings.Builder
	for _, l := range s.lines {
		b.WriteString(string(l) + "\n")
	}
	return b.String()
}
