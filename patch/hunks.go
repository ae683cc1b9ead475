package patch

import "strings"

// Hunk is one change between two versions of a text, with its context, as
// whole text: replacing Old (once, at line OldLine) with New turns that part
// of the old text into the new one.
type Hunk struct {
	// OldLine is the 1-based line of the old text where Old starts (where
	// New goes when Old is empty).
	OldLine int
	// Old is the context and deleted lines; New the context and added lines.
	Old, New string
}

// Hunks returns the changes from old to new in order, each with up to
// context unchanged lines around it (hunks closer than 2*context lines are
// joined), as the unified diff would show them.
func Hunks(old, new []byte, context int) []Hunk {
	ops := diffLines(splitLines(old), splitLines(new))
	var out []Hunk
	aLine := 0
	i := 0
	for i < len(ops) {
		if ops[i].kind == opEqual {
			aLine++
			i++
			continue
		}
		start := i
		for k := 0; k < context && start > 0 && ops[start-1].kind == opEqual; k++ {
			start--
		}
		last := i
		for j := i + 1; j < len(ops); j++ {
			if ops[j].kind != opEqual {
				if j-last-1 > 2*context {
					break
				}
				last = j
			}
		}
		end := last + 1
		for k := 0; k < context && end < len(ops) && ops[end].kind == opEqual; k++ {
			end++
		}
		var o, n strings.Builder
		for _, x := range ops[start:end] {
			if x.kind != opInsert {
				o.WriteString(x.line)
			}
			if x.kind != opDelete {
				n.WriteString(x.line)
			}
		}
		out = append(out, Hunk{OldLine: aLine - (i - start) + 1, Old: o.String(), New: n.String()})
		for _, x := range ops[i:end] {
			if x.kind != opInsert {
				aLine++
			}
		}
		i = end
	}
	return out
}
