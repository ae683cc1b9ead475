package stages

import "github.com/dsbuild/dsbuild/schema"

// Reasons KeepPolicy.Reject gives; stages count each as "rejected:<reason>"
// (rollout) or "trajectory rejected:<reason>" (develop).
const (
	RejectUnresolved      = "unresolved"
	RejectParseFailures   = "parse_failures"
	RejectRepeatedActions = "repeated_actions"
)

// KeepPolicy is the one filter every agent trajectory passes before it can
// reach the dataset: the rollout kind's samples and the develop kind's
// test-writing and implementation runs alike, so a trajectory a rollout
// would drop is never exported from another stage.
type KeepPolicy struct {
	// ResolvedOnly drops trajectories whose grading did not resolve the
	// task.
	ResolvedOnly bool `yaml:"resolved_only" json:"resolved_only"`
	// DropParseFailures drops trajectories with any invalid tool call
	// (unknown tool, unparsable or invalid arguments, a turn with no call).
	DropParseFailures bool `yaml:"drop_parse_failures" json:"drop_parse_failures"`
	// DropRepeatedActions drops trajectories with two consecutive identical
	// tool calls (same tool, same arguments): a sign of a looping agent.
	DropRepeatedActions bool `yaml:"drop_repeated_actions" json:"drop_repeated_actions"`
}

// DefaultKeepPolicy has every filter on.
func DefaultKeepPolicy() KeepPolicy {
	return KeepPolicy{ResolvedOnly: true, DropParseFailures: true, DropRepeatedActions: true}
}

// Reject returns the reason tr fails the policy, or "" to keep it.
// invalidCalls is the rollout's count of invalid tool calls
// (agent.Rollout.InvalidCalls), which the trajectory row does not carry.
func (k KeepPolicy) Reject(tr *schema.Trajectory, invalidCalls int) string {
	switch {
	case k.ResolvedOnly && !tr.Resolved:
		return RejectUnresolved
	case k.DropParseFailures && invalidCalls > 0:
		return RejectParseFailures
	case k.DropRepeatedActions && hasRepeatedAction(tr.Messages):
		return RejectRepeatedActions
	}
	return ""
}

// hasRepeatedAction reports two consecutive tool calls (across assistant
// turns) with the same tool and the same arguments.
func hasRepeatedAction(msgs []schema.Message) bool {
	var prev *schema.FunctionCall
	for _, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		for i := range m.ToolCalls {
			f := &m.ToolCalls[i].Function
			if prev != nil && prev.Name == f.Name && prev.Arguments == f.Arguments {
				return true
			}
			prev = f
		}
	}
	return false
}
