package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// InputSchema names the policy input document, version 1. Its JSON
// Schema is docs/schemas/gate-input.v1.json; the same document is built in
// CI (airlock gate), at the registry's tag guard and at admission, so one
// policy reads the same fields everywhere (DESIGN.md §6).
const InputSchema = "https://airlock.dev/gate/input/v1"

// Stages say where a decision is taken.
const (
	StageCI        = "ci"
	StageRegistry  = "registry"
	StageAdmission = "admission"
)

// Input is the document every policy sees as input.
type Input struct {
	Schema      string      `json:"schema"`
	Stage       string      `json:"stage"`
	Now         time.Time   `json:"now"`
	Environment Environment `json:"environment"`
	Release     Release     `json:"release"`
	Signatures  Signatures  `json:"signatures"`
	// Evals and Bench are the evidence about Release: verified
	// attestations, jobs the gate ran, or files given to it.
	Evals []EvalEvidence  `json:"evals"`
	Bench []BenchEvidence `json:"bench"`
	// Baseline is the release this one would replace, with its evidence;
	// nil for a first release.
	Baseline *Baseline `json:"baseline,omitempty"`
	// Changes is what changed against the baseline, by part.
	Changes   Changes    `json:"changes"`
	SLO       SLO        `json:"slo"`
	Rules     Rules      `json:"rules"`
	Approvals []Approval `json:"approvals"`
	// Metrics flattens the evidence's numbers under stable names
	// (eval.SUITE.pass_rate, bench.ttft_p95_ms, …), for slo.metrics limits
	// and user policies.
	Metrics map[string]float64 `json:"metrics"`
	// Admission is the Kubernetes request, at stage admission only.
	Admission *Admission `json:"admission,omitempty"`
}

// Admission is the Kubernetes request an admission decision is about: a
// policy may deny a release by where and how it would run.
type Admission struct {
	Namespace string `json:"namespace"`
	// Kind is GROUP/VERSION/KIND (v1/Pod, apps/v1/Deployment).
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Operation string `json:"operation"`
	// User and Groups are the requester's, as the API server says.
	User   string   `json:"user"`
	Groups []string `json:"groups"`
	// Field is where the object names the release.
	Field  string `json:"field"`
	DryRun bool   `json:"dry_run"`
	// Mode is the namespace's admission mode (enforce or warn).
	Mode string `json:"mode"`
	// Verdict says whether a pass verdict admitted the release (or a
	// break-glass exception: BreakGlass).
	Verdict    bool `json:"verdict"`
	BreakGlass bool `json:"break_glass"`
}

// Environment is where the release would go.
type Environment struct {
	Name string `json:"name"`
}

// Release is the release under decision, from its manifest and the
// release file it carries (DESIGN.md §3).
type Release struct {
	Ref         string            `json:"ref"`
	Digest      string            `json:"digest"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Owner       string            `json:"owner,omitempty"`
	License     string            `json:"license,omitempty"`
	Parts       []Part            `json:"parts"`
	Annotations map[string]string `json:"annotations"`
	DataScopes  []string          `json:"data_scopes"`
	Datasets    []Dataset         `json:"datasets"`
	BaseModel   string            `json:"base_model,omitempty"`
	Model       *ModelFacts       `json:"model,omitempty"`
}

// Part is one file of a release.
type Part struct {
	Role      string `json:"role"`
	Path      string `json:"path"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// Dataset is a dataset the release file names, with its licence.
type Dataset struct {
	Name    string `json:"name"`
	License string `json:"license,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// ModelFacts are the weights' facts from the release file.
type ModelFacts struct {
	Format       string `json:"format,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	ParamSize    string `json:"param_size,omitempty"`
	Precision    string `json:"precision,omitempty"`
}

// Signatures is what signature verification found.
type Signatures struct {
	Verified bool     `json:"verified"`
	Keys     []Signer `json:"keys"`
	Problems []string `json:"problems"`
}

// Signer is a trusted key that verified a signature.
type Signer struct {
	Name   string `json:"name"`
	KeyID  string `json:"key_id"`
	Layout string `json:"layout,omitempty"`
}

// Evidence sources.
const (
	SourceAttestation = "attestation" // a signed attestation on the release, verified
	SourceRun         = "run"         // a job this gate ran
	SourceFile        = "file"        // a report file given to the gate (unsigned)
)

// EvidenceMeta says where a piece of evidence came from and what it is
// about; policies check it before they believe the numbers.
type EvidenceMeta struct {
	// Digest is the sha256 of the report as read: the evidence's identity
	// in a verdict.
	Digest string `json:"digest"`
	// ReleaseDigest is the release the report says it is about.
	ReleaseDigest string    `json:"release_digest"`
	Source        string    `json:"source"`
	Signed        bool      `json:"signed"`
	Signer        string    `json:"signer,omitempty"`
	Time          time.Time `json:"time"`
	AgeHours      float64   `json:"age_hours"`
	// Problem is set when the evidence could not be read as a report of
	// its kind; every other field but Digest and Source may be empty.
	Problem string `json:"problem,omitempty"`
}

// Rate is a proportion with its interval and sample sizes.
type Rate struct {
	Value   float64 `json:"value"`
	Lower   float64 `json:"lower"`
	Upper   float64 `json:"upper"`
	Items   int     `json:"items"`
	Samples int     `json:"samples"`
}

// EvalEvidence is one eval report, reduced to what policies decide on.
type EvalEvidence struct {
	EvidenceMeta
	Suite            string          `json:"suite"`
	SuiteDigest      string          `json:"suite_digest"`
	Items            int             `json:"items"`
	Engine           string          `json:"engine,omitempty"`
	PassRate         Rate            `json:"pass_rate"`
	SafetyViolations *Rate           `json:"safety_violation_rate,omitempty"`
	BenignRefusals   *Rate           `json:"benign_refusal_rate,omitempty"`
	LatencyP95Ms     *float64        `json:"latency_p95_ms,omitempty"`
	CostUSPerRequest *float64        `json:"cost_us_per_request,omitempty"`
	Errors           int             `json:"errors"`
	Slices           map[string]Rate `json:"slices"`
	// Comparison is the paired comparison against the baseline, when the
	// eval ran one.
	Comparison *Comparison `json:"comparison,omitempty"`
}

// Comparison is a paired non-inferiority test's result.
type Comparison struct {
	BaselineDigest string   `json:"baseline_digest"`
	Verdict        string   `json:"verdict"` // evals.Verdict
	Delta          float64  `json:"delta"`
	Lower          float64  `json:"lower"`
	Upper          float64  `json:"upper"`
	PValue         float64  `json:"p_value"`
	Margin         float64  `json:"margin"`
	Items          int      `json:"items"`
	MinItems       int      `json:"min_items"`
	Regressed      []string `json:"regressed"`
}

// BenchEvidence is one benchmark report, reduced.
type BenchEvidence struct {
	EvidenceMeta
	Requests               int     `json:"requests"`
	Failed                 int     `json:"failed"`
	ErrorRate              float64 `json:"error_rate"`
	TTFTP95Ms              float64 `json:"ttft_p95_ms"`
	TPOTP95Ms              float64 `json:"tpot_p95_ms"`
	E2EP50Ms               float64 `json:"e2e_p50_ms"`
	E2EP95Ms               float64 `json:"e2e_p95_ms"`
	E2EP99Ms               float64 `json:"e2e_p99_ms"`
	OutputTokensPerRequest float64 `json:"output_tokens_per_request"`
	GPU                    GPU     `json:"gpu"`
}

// GPU is what a benchmark saw of the GPUs.
type GPU struct {
	Status          string `json:"status"`
	Count           int    `json:"count"`
	PeakMemoryBytes int64  `json:"peak_memory_bytes"`
}

// Baseline is the release a candidate would replace.
type Baseline struct {
	Ref    string          `json:"ref"`
	Digest string          `json:"digest"`
	Parts  []Part          `json:"parts"`
	Evals  []EvalEvidence  `json:"evals"`
	Bench  []BenchEvidence `json:"bench"`
}

// Part changes.
const (
	ChangeAdded    = "added"
	ChangeRemoved  = "removed"
	ChangeModified = "modified"
)

// Changes is what differs from the baseline. With no baseline every part
// counts as added and FirstRelease is set.
type Changes struct {
	FirstRelease bool         `json:"first_release"`
	Parts        []PartChange `json:"parts"`
	// Roles are the roles of the parts that changed, sorted.
	Roles []string `json:"roles"`
	// PromptOnly is set when something changed and every change is to a
	// prompt.
	PromptOnly bool `json:"prompt_only"`
}

// PartChange is one part added, removed or modified.
type PartChange struct {
	Role   string `json:"role"`
	Path   string `json:"path"`
	Change string `json:"change"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// Approval is a person's attributed, expiring approval of changes to
// some parts (roles), such as a safety settings change.
type Approval struct {
	By     string   `json:"by" yaml:"by"`
	For    []string `json:"for" yaml:"for"`
	Reason string   `json:"reason,omitempty" yaml:"reason,omitempty"`
	Ticket string   `json:"ticket,omitempty" yaml:"ticket,omitempty"`
	// Subject, when set, binds the approval to one release digest or one
	// part's new digest; an approval without it covers any release gated
	// while it is unexpired.
	Subject string    `json:"subject,omitempty" yaml:"subject,omitempty"`
	Expires time.Time `json:"expires" yaml:"expires"`
}

// Digest is the sha256 of the input's JSON encoding: decisions and
// verdicts name the exact input they were taken on.
func (in *Input) Digest() (string, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("encoding input: %w", err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:]), nil
}
