package evals

// Sample is one generation for an item and its outcome: the unit eval
// reports, caches and importers deal in. An item asked for n samples has
// n of them, Index 0..n-1.
type Sample struct {
	ItemResult
	Index int `json:"sample"`
	// Output is the text the model produced (after the release's output
	// redaction, when it has one).
	Output string `json:"output,omitempty"`
	// Error is set when no output could be had (the engine failed after
	// its retries, or an imported record says so). Such a sample counts
	// as a failure, never as skipped.
	Error      string `json:"error,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	// Refused is whether the output is a refusal (IsRefusal, or the
	// release's own refusal message).
	Refused      bool    `json:"refused"`
	InputTokens  int     `json:"input_tokens,omitempty"`
	OutputTokens int     `json:"output_tokens,omitempty"`
	LatencyMS    float64 `json:"latency_ms,omitempty"`
	// CostUSD is nil when no token price is configured for the model.
	CostUSD *float64 `json:"cost_usd,omitempty"`
}
