package gate

// SLO is the slo-rules.yaml shape: service levels and budgets a release
// must keep in an environment. A nil limit is not checked. It is read from
// gate.yaml's slo section (or the file slo_file names) and passed to
// policies unchanged.
type SLO struct {
	// LatencyP95Ms bounds the benchmark's end-to-end p95, in ms.
	LatencyP95Ms *float64 `json:"latency_p95_ms,omitempty" yaml:"latency_p95_ms,omitempty"`
	// TTFTP95Ms bounds the benchmark's time-to-first-token p95, in ms.
	TTFTP95Ms *float64 `json:"ttft_p95_ms,omitempty" yaml:"ttft_p95_ms,omitempty"`
	// ErrorRate bounds the benchmark's share of failed requests.
	ErrorRate *float64 `json:"error_rate,omitempty" yaml:"error_rate,omitempty"`
	// CostUSPerRequest bounds the evals' cost per request, in millionths
	// of a US dollar (measured with eval --prices).
	CostUSPerRequest *float64 `json:"cost_us_per_request,omitempty" yaml:"cost_us_per_request,omitempty"`
	// QualityPassRate is the pass rate each required suite's interval
	// must show: its lower bound must reach it.
	QualityPassRate *float64 `json:"quality_pass_rate,omitempty" yaml:"quality_pass_rate,omitempty"`
	// SafetyViolationRate bounds the upper bound of the safety violation
	// rate (items tagged safety).
	SafetyViolationRate *float64 `json:"safety_violation_rate,omitempty" yaml:"safety_violation_rate,omitempty"`
	// Tokens bounds token use per request.
	Tokens *TokenLimits `json:"tokens,omitempty" yaml:"tokens,omitempty"`
	// GPU bounds what the release may take of the GPUs.
	GPU *GPULimits `json:"gpu,omitempty" yaml:"gpu,omitempty"`
	// Budgets are shared budgets (tokens per day, GPU hours) with what is
	// used and what this release is expected to add.
	Budgets map[string]Budget `json:"budgets,omitempty" yaml:"budgets,omitempty"`
	// FeatureFlags are passed to policies as they are.
	FeatureFlags map[string]bool `json:"feature_flags,omitempty" yaml:"feature_flags,omitempty"`
	// Metrics bounds any number of input.metrics by name.
	Metrics map[string]Limit `json:"metrics,omitempty" yaml:"metrics,omitempty"`
}

// TokenLimits bound tokens per request.
type TokenLimits struct {
	OutputPerRequest *float64 `json:"output_per_request,omitempty" yaml:"output_per_request,omitempty"`
}

// GPULimits bound GPU use.
type GPULimits struct {
	Count       *int   `json:"count,omitempty" yaml:"count,omitempty"`
	MemoryBytes *int64 `json:"memory_bytes,omitempty" yaml:"memory_bytes,omitempty"`
}

// Budget is a shared budget: Limit in its own unit, Used so far, what
// this release is Projected to add, and the share of Limit that must stay
// free afterwards (MinHeadroom, 0.1 = 10%).
type Budget struct {
	Limit       float64 `json:"limit" yaml:"limit"`
	Used        float64 `json:"used" yaml:"used"`
	Projected   float64 `json:"projected" yaml:"projected"`
	MinHeadroom float64 `json:"min_headroom" yaml:"min_headroom"`
}

// Limit bounds one metric; either side may be absent.
type Limit struct {
	Min *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max *float64 `json:"max,omitempty" yaml:"max,omitempty"`
}

// Rules are the built-in policies' parameters for an environment.
type Rules struct {
	// MaxEvidenceAgeHours is how old evidence may be (default 168, a week).
	MaxEvidenceAgeHours float64 `json:"max_evidence_age_hours" yaml:"max_evidence_age_hours"`
	// RequiredSuites must each have fresh eval evidence for the digest.
	RequiredSuites []string `json:"required_suites" yaml:"required_suites"`
	// PromptOnlySuites, when set, replace RequiredSuites for a change
	// that touches only prompts: a lighter suite for a lighter change.
	PromptOnlySuites []string `json:"prompt_only_suites,omitempty" yaml:"prompt_only_suites,omitempty"`
	// RequireBench asks for fresh benchmark evidence (implied by latency,
	// error-rate, token and GPU limits).
	RequireBench bool `json:"require_bench" yaml:"require_bench"`
	// NonInferiority requires each required suite's paired comparison
	// against the baseline to say non-inferior (when there is a baseline).
	NonInferiority bool `json:"non_inferiority" yaml:"non_inferiority"`
	// Licenses is the licence allow-list (SPDX ids) for the release and
	// the datasets it names; empty allows any.
	Licenses []string `json:"licenses,omitempty" yaml:"licenses,omitempty"`
	// DataScopes are the data scopes allowed in this environment; a
	// release naming a scope outside them is denied. Empty allows any.
	DataScopes []string `json:"data_scopes,omitempty" yaml:"data_scopes,omitempty"`
	// DataDeny forbids models (by release-name glob) access to datasets
	// or scopes.
	DataDeny []DataRule `json:"data_deny,omitempty" yaml:"data_deny,omitempty"`
	// ApprovalRequired lists part roles (safety, tokenizer, …) whose
	// change needs an attributed, unexpired approval.
	ApprovalRequired []string `json:"approval_required" yaml:"approval_required"`
}

// DataRule says model (a glob on the release name) may not access
// dataset (a data scope or dataset name).
type DataRule struct {
	Model   string `json:"model" yaml:"model"`
	Dataset string `json:"dataset" yaml:"dataset"`
	Reason  string `json:"reason,omitempty" yaml:"reason,omitempty"`
}
