package registry

import (
	modelspec "github.com/modelpack/model-spec/specs-go/v1"
)

// The release format is a CNCF ModelPack artifact so that modctl, KitOps,
// Docker Model Runner and CRI-O image volumes can read it
// (https://github.com/modelpack/model-spec/blob/main/docs/spec.md). The
// constants come from the ModelPack Go types rather than being retyped.
const (
	ArtifactTypeModel        = modelspec.ArtifactTypeModelManifest
	MediaTypeModelConfig     = modelspec.MediaTypeModelConfig
	MediaTypeWeightRaw       = modelspec.MediaTypeModelWeightRaw
	MediaTypeWeightConfigRaw = modelspec.MediaTypeModelWeightConfigRaw
	MediaTypeDocRaw          = modelspec.MediaTypeModelDocRaw
	MediaTypeCodeRaw         = modelspec.MediaTypeModelCodeRaw
	MediaTypeDatasetRaw      = modelspec.MediaTypeModelDatasetRaw

	// AnnotationFilepath is ModelPack's per-layer relative path. Readers
	// such as KitOps and modctl unpack by it.
	AnnotationFilepath = modelspec.AnnotationFilepath
	// AnnotationFileMetadata carries the file's tar-like metadata as JSON.
	AnnotationFileMetadata = modelspec.AnnotationFileMetadata
)

// Airlock's own annotations. The dev.airlock prefix follows the reverse
// domain rule of the image-spec (annotations.md).
const (
	// AnnotationRole says what part of the release a layer is: one of the
	// Role values. Partial pulls and change-aware gating select by it.
	AnnotationRole = "dev.airlock.role"
	// AnnotationPart names the entry of the release file a layer came
	// from, for parts that have names (prompts and evals).
	AnnotationPart = "dev.airlock.part"
	// AnnotationRelease holds the release file, normalised to JSON, on the
	// manifest, so a reader learns parts, scopes and lineage without
	// fetching anything else.
	AnnotationRelease = "dev.airlock.release"
)

// Role is the part of a release a file belongs to.
type Role string

// The roles of DESIGN.md §3.
const (
	RoleModel     Role = "model"
	RoleTokenizer Role = "tokenizer"
	RolePrompt    Role = "prompt"
	RoleSafety    Role = "safety"
	RoleEval      Role = "eval"
	RoleDoc       Role = "doc"
	RoleCode      Role = "code"
)

// Roles lists every role in the order layers are laid out in a manifest.
func Roles() []Role {
	return []Role{RoleModel, RoleTokenizer, RolePrompt, RoleSafety, RoleEval, RoleDoc, RoleCode}
}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	for _, k := range Roles() {
		if r == k {
			return true
		}
	}
	return false
}

// IsModelArtifact reports whether an artifact type or config media type
// marks a ModelPack release.
func IsModelArtifact(artifactType, configMediaType string) bool {
	return artifactType == ArtifactTypeModel || configMediaType == MediaTypeModelConfig
}

// Signatures and attestations as Sigstore bundle referrers (cosign v3's
// layout; see registry/sign).
const (
	// MediaTypeSigstoreBundle is the artifactType of a bundle referrer and
	// the media type of its one layer.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// AnnotationBundlePredicateType names the in-toto predicate type of a
	// bundle referrer, so readers can filter without fetching it.
	AnnotationBundlePredicateType = "dev.sigstore.bundle.predicateType"
	// PredicateTypeOMS is an OpenSSF Model Signing (OMS v1.0) signature.
	PredicateTypeOMS = "https://model_signing/signature/v1.0"
	// OMSFile is the name OMS verifiers look for beside a model; airlock
	// pull writes the release's OMS bundle there.
	OMSFile = "model.sig"
)
