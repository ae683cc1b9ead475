package agent

import "github.com/dsbuild/dsbuild/schema"

// Trajectory builds the dataset row of a rollout: the conversation, the
// tools, the patch, the grade (g may be nil for an ungraded rollout) and the
// token counts. id is the trajectory id, unique within the dataset.
func Trajectory(task Task, policy Policy, r *Rollout, g *Grading, id string) schema.Trajectory {
	tr := schema.Trajectory{
		TrajectoryID:     id,
		InstanceID:       task.InstanceID,
		Repo:             task.Repo,
		TaskType:         schema.TaskType(task.TaskType),
		Model:            policy.Model(),
		Policy:           policy.Name(),
		Messages:         r.Messages,
		Tools:            r.Tools,
		Patch:            r.Patch,
		ExitStatus:       r.ExitStatus,
		NumTurns:         r.Steps,
		PromptTokens:     r.PromptTokens,
		CompletionTokens: r.CompletionTokens,
	}
	if g != nil {
		tr.Resolved = g.Resolved
		tr.Reward = g.Reward
	}
	return tr
}
