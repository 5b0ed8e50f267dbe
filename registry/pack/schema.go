package pack

import (
	_ "embed"
	"slices"
)

//go:embed schema/release.v1.schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of the release file,
// published in the repository at registry/pack/schema/release.v1.schema.json
// for editors and CI. Parse checks everything it says, and more.
func Schema() []byte { return slices.Clone(schema) }
