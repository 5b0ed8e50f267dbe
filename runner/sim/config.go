package sim

import "time"

// Config is one version of the simulated model: what it answers, how fast,
// and how often it fails. It is read from YAML (Load); every field has a
// zero value that means "none" or "instant", so a test can pin exact
// timing with Fixed distributions and no faults.
type Config struct {
	// Model is the name /v1/models lists and responses carry.
	Model string `yaml:"model" json:"model"`
	// Seed makes latency draws, error and refusal choices repeatable.
	Seed int64 `yaml:"seed" json:"seed"`

	// TTFT is the delay from receiving a request to the first generated
	// token (after the role chunk, which is sent at once).
	TTFT Dist `yaml:"ttft" json:"ttft"`
	// PerToken is the delay before each later token.
	PerToken Dist `yaml:"per_token" json:"per_token"`
	// TokensPerChunk groups tokens into one stream event (servers with
	// tool or reasoning parsers do); zero means one.
	TokensPerChunk int `yaml:"tokens_per_chunk" json:"tokens_per_chunk"`

	// Answers are matched against the last user message (chat) or the
	// prompt (completions), first match wins.
	Answers []Answer `yaml:"answers" json:"answers"`
	// Default is the answer when none matches; empty means a
	// deterministic filler text of MaxTokens tokens.
	Default string `yaml:"default" json:"default"`
	// Refusal is the text of a refusal.
	Refusal string `yaml:"refusal" json:"refusal"`

	// RefusalRate is the probability that an answer is replaced by the
	// refusal; ErrorRate that a request fails with ErrorStatus.
	RefusalRate float64 `yaml:"refusal_rate" json:"refusal_rate"`
	ErrorRate   float64 `yaml:"error_rate" json:"error_rate"`
	ErrorStatus int     `yaml:"error_status" json:"error_status"` // zero means 500

	// MaxConcurrency makes requests beyond it wait (a server's batch
	// slots); zero means unlimited.
	MaxConcurrency int `yaml:"max_concurrency" json:"max_concurrency"`
	// StartupDelay delays readiness of /v1/models, for readiness tests.
	StartupDelay time.Duration `yaml:"startup_delay" json:"startup_delay"`
}

// Answer is the scripted reply to prompts that match.
type Answer struct {
	// Match is a substring of the prompt; Regex a regular expression.
	// One of them is set.
	Match string `yaml:"match" json:"match,omitempty"`
	Regex string `yaml:"regex" json:"regex,omitempty"`
	// Text is the answer, split into tokens at spaces (a space starts a
	// token), so tests can predict token counts.
	Text string `yaml:"text" json:"text,omitempty"`
	// Refuse answers with the refusal.
	Refuse bool `yaml:"refuse" json:"refuse,omitempty"`
	// Fault makes the request fail in one way: "http_429" (with
	// Retry-After of RetryAfter), "http_500", "http_400", "cut" (the
	// stream stops after half the tokens, no [DONE]), "hang" (headers
	// sent, then nothing until the client gives up), "garbage" (a data:
	// line that is not JSON), "close" (the connection is closed before
	// any response).
	Fault      string        `yaml:"fault" json:"fault,omitempty"`
	RetryAfter time.Duration `yaml:"retry_after" json:"retry_after,omitempty"`
	// FaultTimes limits the fault to the first N matching requests, so a
	// retry can succeed; zero means every time.
	FaultTimes int `yaml:"fault_times" json:"fault_times,omitempty"`
}

// Dist is a latency distribution. Kind is "fixed" (Mean), "normal" (Mean,
// StdDev, truncated at zero), "lognormal" (Mean and StdDev of the
// resulting delay) or "" (zero delay).
type Dist struct {
	Kind   string        `yaml:"kind" json:"kind,omitempty"`
	Mean   time.Duration `yaml:"mean" json:"mean,omitempty"`
	StdDev time.Duration `yaml:"stddev" json:"stddev,omitempty"`
}
