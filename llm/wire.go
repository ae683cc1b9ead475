package llm

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/dsbuild/dsbuild/schema"
)

// buildParams turns a request into the SDK's typed parameters plus the
// options that carry what the typed parameters do not (response_format as
// given, extra_body fields).
func (c *Client) buildParams(r Request) (openai.ChatCompletionNewParams, []option.RequestOption, error) {
	p := openai.ChatCompletionNewParams{Model: shared.ChatModel(c.profile.Model)}
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, len(r.Messages))
	for i, m := range r.Messages {
		u, err := messageParam(m)
		if err != nil {
			return p, nil, fmt.Errorf("llm: message %d: %w", i, err)
		}
		msgs = append(msgs, u)
	}
	p.Messages = msgs
	for i, t := range r.Tools {
		tp, err := toolParam(t)
		if err != nil {
			return p, nil, fmt.Errorf("llm: tool %d (%q): %w", i, t.Function.Name, err)
		}
		p.Tools = append(p.Tools, tp)
	}
	switch r.ToolChoice {
	case "":
	case "auto", "none", "required":
		p.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String(r.ToolChoice)}
	default:
		p.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: r.ToolChoice})
	}
	pr := c.profile
	if pr.Temperature != nil {
		p.Temperature = openai.Float(*pr.Temperature)
	}
	if pr.TopP != nil {
		p.TopP = openai.Float(*pr.TopP)
	}
	if pr.Seed != nil {
		p.Seed = openai.Int(*pr.Seed + int64(r.Sample))
	}
	var opts []option.RequestOption
	if mt := c.maxTokens(r); mt > 0 {
		if _, ok := pr.ExtraBody["max_completion_tokens"]; !ok {
			p.MaxTokens = openai.Int(int64(mt))
		}
	}
	if len(r.ResponseFormat) > 0 {
		var rf any
		if err := json.Unmarshal(r.ResponseFormat, &rf); err != nil {
			return p, nil, fmt.Errorf("llm: response format is not valid JSON: %w", err)
		}
		opts = append(opts, option.WithJSONSet("response_format", rf))
	}
	keys := make([]string, 0, len(pr.ExtraBody))
	for k := range pr.ExtraBody {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = append(opts, option.WithJSONSet(k, pr.ExtraBody[k]))
	}
	return p, opts, nil
}

func messageParam(m schema.Message) (openai.ChatCompletionMessageParamUnion, error) {
	switch m.Role {
	case "system":
		u := openai.SystemMessage(m.Content)
		if m.Name != "" {
			u.OfSystem.Name = openai.String(m.Name)
		}
		return u, nil
	case "developer":
		u := openai.DeveloperMessage(m.Content)
		if m.Name != "" {
			u.OfDeveloper.Name = openai.String(m.Name)
		}
		return u, nil
	case "user":
		u := openai.UserMessage(m.Content)
		if m.Name != "" {
			u.OfUser.Name = openai.String(m.Name)
		}
		return u, nil
	case "tool":
		if m.ToolCallID == "" {
			return openai.ChatCompletionMessageParamUnion{}, fmt.Errorf("tool message has no tool_call_id")
		}
		return openai.ToolMessage(m.Content, m.ToolCallID), nil
	case "assistant":
		a := openai.ChatCompletionAssistantMessageParam{}
		if m.Content != "" || len(m.ToolCalls) == 0 {
			a.Content.OfString = openai.String(m.Content)
		}
		if m.Name != "" {
			a.Name = openai.String(m.Name)
		}
		for _, tc := range m.ToolCalls {
			a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID:       tc.ID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Function.Name, Arguments: tc.Function.Arguments},
				},
			})
		}
		return openai.ChatCompletionMessageParamUnion{OfAssistant: &a}, nil
	default:
		return openai.ChatCompletionMessageParamUnion{}, fmt.Errorf("unknown role %q (want system, developer, user, assistant or tool)", m.Role)
	}
}

func toolParam(t schema.Tool) (openai.ChatCompletionToolUnionParam, error) {
	if t.Type != "" && t.Type != "function" {
		return openai.ChatCompletionToolUnionParam{}, fmt.Errorf("type %q is not supported (want \"function\")", t.Type)
	}
	if t.Function.Name == "" {
		return openai.ChatCompletionToolUnionParam{}, fmt.Errorf("function has no name")
	}
	def := shared.FunctionDefinitionParam{Name: t.Function.Name}
	if t.Function.Description != "" {
		def.Description = openai.String(t.Function.Description)
	}
	if len(t.Function.Parameters) > 0 {
		var params map[string]any
		if err := json.Unmarshal(t.Function.Parameters, &params); err != nil {
			return openai.ChatCompletionToolUnionParam{}, fmt.Errorf("parameters are not a JSON object: %w", err)
		}
		def.Parameters = params
	}
	return openai.ChatCompletionFunctionTool(def), nil
}

// fromCompletion converts the SDK's parsed reply into the stored form.
func fromCompletion(comp *openai.ChatCompletion) (stored, error) {
	if comp == nil || len(comp.Choices) == 0 {
		return stored{}, fmt.Errorf("reply has no choices")
	}
	ch := comp.Choices[0]
	msg := schema.Message{Role: "assistant", Content: ch.Message.Content}
	if msg.Content == "" && ch.Message.Refusal != "" {
		msg.Content = ch.Message.Refusal
	}
	for _, tc := range ch.Message.ToolCalls {
		typ := tc.Type
		if typ == "" {
			typ = "function"
		}
		msg.ToolCalls = append(msg.ToolCalls, schema.ToolCall{
			ID:       tc.ID,
			Type:     typ,
			Function: schema.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments},
		})
	}
	return stored{
		Message:      msg,
		FinishReason: string(ch.FinishReason),
		Usage:        Usage{PromptTokens: comp.Usage.PromptTokens, CompletionTokens: comp.Usage.CompletionTokens},
	}, nil
}
