package pack

// APIVersion and KindRelease identify a release file.
const (
	APIVersion  = "airlock.dev/v1"
	KindRelease = "Release"
	// DefaultFile is the release file's name inside a release directory.
	DefaultFile = "airlock.yaml"
)

// Release is the parsed release file. Its JSON form (field order fixed,
// empty fields omitted) is what travels in the dev.airlock.release
// manifest annotation, so JSON tags are part of the wire format.
type Release struct {
	APIVersion string     `yaml:"apiVersion" json:"apiVersion"`
	Kind       string     `yaml:"kind" json:"kind"`
	Metadata   Metadata   `yaml:"metadata" json:"metadata"`
	Model      *Model     `yaml:"model,omitempty" json:"model,omitempty"`
	Tokenizer  *PathPart  `yaml:"tokenizer,omitempty" json:"tokenizer,omitempty"`
	Prompts    []Named    `yaml:"prompts,omitempty" json:"prompts,omitempty"`
	Safety     *PathPart  `yaml:"safety,omitempty" json:"safety,omitempty"`
	Evals      []Named    `yaml:"evals,omitempty" json:"evals,omitempty"`
	Docs       []PathPart `yaml:"docs,omitempty" json:"docs,omitempty"`
	Code       []PathPart `yaml:"code,omitempty" json:"code,omitempty"`
	DataScopes []string   `yaml:"dataScopes,omitempty" json:"dataScopes,omitempty"`
	Datasets   []Dataset  `yaml:"datasets,omitempty" json:"datasets,omitempty"`
	BaseModel  string     `yaml:"baseModel,omitempty" json:"baseModel,omitempty"`
}

// Metadata identifies the release and who owns it.
type Metadata struct {
	Name        string   `yaml:"name" json:"name"`
	Version     string   `yaml:"version" json:"version"`
	Owner       string   `yaml:"owner,omitempty" json:"owner,omitempty"`
	License     string   `yaml:"license,omitempty" json:"license,omitempty"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Authors     []string `yaml:"authors,omitempty" json:"authors,omitempty"`
	SourceURL   string   `yaml:"sourceURL,omitempty" json:"sourceURL,omitempty"`
	Revision    string   `yaml:"revision,omitempty" json:"revision,omitempty"`
}

// Model is the weights part and the facts the ModelPack config records
// about them.
type Model struct {
	Path         string `yaml:"path" json:"path"`
	Format       string `yaml:"format,omitempty" json:"format,omitempty"`
	Architecture string `yaml:"architecture,omitempty" json:"architecture,omitempty"`
	Family       string `yaml:"family,omitempty" json:"family,omitempty"`
	ParamSize    string `yaml:"paramSize,omitempty" json:"paramSize,omitempty"`
	Precision    string `yaml:"precision,omitempty" json:"precision,omitempty"`
	Quantization string `yaml:"quantization,omitempty" json:"quantization,omitempty"`
}

// PathPart is a part that is only a file or directory.
type PathPart struct {
	Path string `yaml:"path" json:"path"`
}

// Named is a part with a name, so several of its kind can coexist
// (prompts, eval suites).
type Named struct {
	Name string `yaml:"name" json:"name"`
	Path string `yaml:"path" json:"path"`
}

// Dataset records data the model was trained or tuned on. It is metadata
// for lineage and the ML-BOM; nothing of it is packed.
type Dataset struct {
	Name    string `yaml:"name" json:"name"`
	URL     string `yaml:"url,omitempty" json:"url,omitempty"`
	License string `yaml:"license,omitempty" json:"license,omitempty"`
	Digest  string `yaml:"digest,omitempty" json:"digest,omitempty"`
}
