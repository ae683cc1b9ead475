package stages

import (
	"regexp"
	"strings"
)

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

// shellJoin quotes argv as one POSIX shell command line.
func shellJoin(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if shellSafe.MatchString(a) {
			parts[i] = a
		} else {
			parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

var ociTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// imageTag makes an instance id a valid OCI tag: other characters become
// '_' and it is cut to 128 characters.
func imageTag(id string) string {
	if ociTag.MatchString(id) {
		return id
	}
	b := []byte(id)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || (i > 0 && (ch == '.' || ch == '-'))) {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// imageRef is the human-readable name of a task's image,
// dsbuild/<repository>:<tag>, with the repository lower-cased and made
// valid.
func imageRef(repository, id string) string {
	repo := []byte(strings.ToLower(repository))
	for i, ch := range repo {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			repo[i] = '-'
		}
	}
	if len(repo) == 0 {
		repo = []byte("tasks")
	}
	return "dsbuild/" + string(repo) + ":" + imageTag(id)
}
