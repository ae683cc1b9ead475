package schema

import (
	"fmt"
	"strings"
)

// Project is a software project proposed by a model (SWE-Playground step 1):
// what to build, under which constraints, in which language.
type Project struct {
	// ID is a stable, file-name-safe identifier, e.g. "mathx".
	ID string `json:"id"`
	// Name is the human-readable project name.
	Name string `json:"name"`
	// Description says what the project does.
	Description string `json:"description"`
	// Language is the implementation language, e.g. "python".
	Language string `json:"language"`
	// Specification states inputs, outputs, formats, criteria and edge cases.
	Specification string `json:"specification,omitempty"`
	// Constraints are extra rules, e.g. "command-line interface only".
	Constraints []string `json:"constraints,omitempty"`
	// BannedLibraries must not be used, so the core is written from scratch.
	BannedLibraries []string `json:"banned_libraries,omitempty"`
}

// Validate reports the first missing required field of p.
func (p Project) Validate() error {
	if strings.TrimSpace(p.ID) == "" {
		return fmt.Errorf("project %q: empty id", p.Name)
	}
	if strings.ContainsAny(p.ID, "/\\\x00") || p.ID == "." || p.ID == ".." {
		return fmt.Errorf("project %q: id must be usable as a file name", p.ID)
	}
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("project %q: empty name", p.ID)
	}
	if strings.TrimSpace(p.Description) == "" {
		return fmt.Errorf("project %q: empty description", p.ID)
	}
	return nil
}

// TaskSpec is one unit of work from the hierarchical decomposition of a
// project (SWE-Playground step 2): the size of one pull request, placed in a
// phase and a module, with the unit tests that check it.
type TaskSpec struct {
	// ID is unique within the project, e.g. "1.2.3".
	ID string `json:"id"`
	// Title is a one-line summary.
	Title string `json:"title"`
	// Description says what to implement.
	Description string `json:"description"`
	// Dependencies are IDs of tasks that must be done first.
	Dependencies []string `json:"dependencies"`
	// Difficulty runs from 1 (easiest) to 5.
	Difficulty int `json:"difficulty"`
	// Tests is the checklist of unit tests to write for the task.
	Tests []string `json:"tests"`
	// Phase names the phase the task belongs to.
	Phase string `json:"phase"`
	// Module names the module the task belongs to.
	Module string `json:"module"`
}

// Validate checks the fields of one task spec on their own.
func (s TaskSpec) Validate() error {
	if strings.TrimSpace(s.ID) == "" {
		return fmt.Errorf("task spec %q: empty id", s.Title)
	}
	if strings.TrimSpace(s.Title) == "" && strings.TrimSpace(s.Description) == "" {
		return fmt.Errorf("task spec %s: empty title and description", s.ID)
	}
	if s.Difficulty < 1 || s.Difficulty > 5 {
		return fmt.Errorf("task spec %s: difficulty %d outside 1-5", s.ID, s.Difficulty)
	}
	for _, d := range s.Dependencies {
		if d == s.ID {
			return fmt.Errorf("task spec %s: depends on itself", s.ID)
		}
	}
	return nil
}

// OrderTaskSpecs validates specs as a set (each spec valid, IDs unique,
// dependencies known, no cycles) and returns them in dependency order.
// Among tasks whose dependencies are met, the earlier one in specs comes
// first, so the result depends only on the input.
func OrderTaskSpecs(specs []TaskSpec) ([]TaskSpec, error) {
	index := make(map[string]int, len(specs))
	for i, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if j, dup := index[s.ID]; dup {
			return nil, fmt.Errorf("task spec %s: duplicate id (entries %d and %d)", s.ID, j, i)
		}
		index[s.ID] = i
	}
	for _, s := range specs {
		for _, d := range s.Dependencies {
			if _, ok := index[d]; !ok {
				return nil, fmt.Errorf("task spec %s: unknown dependency %q", s.ID, d)
			}
		}
	}
	done := make([]bool, len(specs))
	out := make([]TaskSpec, 0, len(specs))
	for len(out) < len(specs) {
		progressed := false
		for i, s := range specs {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range s.Dependencies {
				if !done[index[d]] {
					ready = false
					break
				}
			}
			if ready {
				done[i] = true
				out = append(out, s)
				progressed = true
				break // restart so the earliest ready task always goes next
			}
		}
		if !progressed {
			var stuck []string
			for i, s := range specs {
				if !done[i] {
					stuck = append(stuck, s.ID)
				}
			}
			return nil, fmt.Errorf("task specs: dependency cycle among %s", strings.Join(stuck, ", "))
		}
	}
	return out, nil
}
