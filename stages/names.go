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

// imageTag makes an instance id a valid image tag that is also a valid
// org.opencontainers.image.ref.name, so that `skopeo copy oci:DIR:TAG`
// and podman accept it: ASCII letters and digits are kept, a single '.',
// '_' or '-' between two of them is kept, and every other run of
// characters becomes one '-' (so "mathx__bug-1" is "mathx-bug-1"). Leading
// and trailing separators are dropped and the tag is cut to 128
// characters; an id with no letter or digit becomes "task".
func imageTag(id string) string {
	var b strings.Builder
	run := ""
	for _, ch := range id {
		alnum := ch < 128 && (ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9')
		if !alnum {
			run += string(ch)
			continue
		}
		if run != "" && b.Len() > 0 {
			if run == "." || run == "_" || run == "-" {
				b.WriteString(run)
			} else {
				b.WriteByte('-')
			}
		}
		run = ""
		b.WriteRune(ch)
	}
	tag := b.String()
	if len(tag) > 128 {
		tag = strings.TrimRight(tag[:128], "._-")
	}
	if tag == "" {
		tag = "task"
	}
	return tag
}

// imageRef is the name a task's image has inside the build (labels,
// logs): dsbuild/<repository>:<tag>. The name an exported instance gives
// is set by export (see exportImageName).
func imageRef(repository, id string) string {
	return "dsbuild/" + imageRepository(repository, "tasks") + ":" + imageTag(id)
}

// imageRepository makes s a valid lower-case repository path component
// (fallback if nothing is left).
func imageRepository(s, fallback string) string {
	var b strings.Builder
	sep := false
	for _, ch := range strings.ToLower(s) {
		if ch < 128 && (ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			if sep && b.Len() > 0 {
				b.WriteByte('-')
			}
			sep = false
			b.WriteRune(ch)
			continue
		}
		sep = true
	}
	if b.Len() == 0 {
		return fallback
	}
	return b.String()
}
