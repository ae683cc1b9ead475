package agent

import "regexp"

var (
	// pytest's closing line, "==== 3 passed, 1 failed in 0.12s ====", "2
	// failed in 0.03s" (-q), and the "(0:01:02)" form of long runs.
	pytestDuration = regexp.MustCompile(`(?m)^(.*\b(?:passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|no tests ran)\b.*?) in \d+(?:\.\d+)?s(?: \(\d+:\d\d:\d\d\))?( =+)?$`)
	// Object addresses in reprs: "<Calculator object at 0x7f895ac8fb10>".
	objectAddress = regexp.MustCompile(`\b0x[0-9a-f]{8,16}\b`)
)

// Normalize removes from program output what differs between two runs of
// the same program on the same files: pytest's wall-clock durations and
// object addresses (which address-space randomisation changes). Tool
// observations and test reports go through it, so a trajectory, and the
// model-call keys that include it, come out the same on every machine.
func Normalize(out string) string {
	out = pytestDuration.ReplaceAllString(out, "$1$2")
	return objectAddress.ReplaceAllString(out, "0x…")
}
