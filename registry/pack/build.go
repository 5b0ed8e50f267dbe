package pack

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/registry"
	modelspec "github.com/modelpack/model-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configures Pack. The zero value packs with no creation time,
// one hashing worker per CPU and no digest cache.
type Options struct {
	// Created is written as the config's createdAt and the manifest's
	// org.opencontainers.image.created. Leave it nil for a digest that
	// depends only on content; the CLI sets it from SOURCE_DATE_EPOCH.
	Created *time.Time
	// Workers is how many files are hashed at once.
	Workers int
	// Cache skips hashing files whose digest is known and unchanged.
	Cache *HashCache
	// Progress is told of every byte read.
	Progress Progress
}

// Artifact is a packed release: the manifest and config bytes, and the
// files behind its layers.
type Artifact struct {
	Manifest     ocispec.Manifest
	ManifestJSON []byte
	Config       []byte
	Layers       []Layer
}

// Layer is a manifest layer and the file holding its content.
type Layer struct {
	ocispec.Descriptor
	File Entry
}

// Descriptor returns the manifest's descriptor, what a registry resolves
// the release to.
func (a *Artifact) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: registry.ArtifactTypeModel,
		Digest:       digest.FromBytes(a.ManifestJSON),
		Size:         int64(len(a.ManifestJSON)),
	}
}

// ConfigDescriptor returns the config blob's descriptor.
func (a *Artifact) ConfigDescriptor() ocispec.Descriptor { return a.Manifest.Config }

// Pack loads nothing: it hashes the files of a loaded release and builds
// its artifact.
func Pack(ctx context.Context, l *Loaded, opts Options) (*Artifact, error) {
	digests, err := HashFiles(ctx, l.Entries, opts.Workers, opts.Cache, opts.Progress)
	if err != nil {
		return nil, err
	}
	return Build(l, digests, opts.Created)
}

// Build assembles the ModelPack manifest and config from a loaded release
// and the digests of its entries (in entry order). It reads no file.
func Build(l *Loaded, digests []digest.Digest, created *time.Time) (*Artifact, error) {
	if len(digests) != len(l.Entries) {
		return nil, fmt.Errorf("building manifest: %d digests for %d files", len(digests), len(l.Entries))
	}
	r := &l.Release
	var ts time.Time
	if created != nil {
		ts = created.UTC().Truncate(time.Second)
	}
	layers := make([]Layer, len(l.Entries))
	descs := make([]ocispec.Descriptor, len(l.Entries))
	diffIDs := make([]digest.Digest, len(l.Entries))
	for i, e := range l.Entries {
		mode := uint32(0o644)
		if e.Executable {
			mode = 0o755
		}
		meta, err := json.Marshal(modelspec.FileMetadata{
			Name: e.Path, Mode: mode, Size: e.Size, ModTime: ts, Typeflag: '0',
		})
		if err != nil {
			return nil, err
		}
		ann := map[string]string{
			registry.AnnotationFilepath:     e.Path,
			ocispec.AnnotationTitle:         e.Path,
			registry.AnnotationRole:         string(e.Role),
			registry.AnnotationFileMetadata: string(meta),
		}
		if e.Part != "" {
			ann[registry.AnnotationPart] = e.Part
		}
		if e.Untested {
			ann[modelspec.AnnotationMediaTypeUntested] = "true"
		}
		descs[i] = ocispec.Descriptor{MediaType: e.MediaType, Digest: digests[i], Size: e.Size, Annotations: ann}
		layers[i] = Layer{Descriptor: descs[i], File: e}
		diffIDs[i] = digests[i]
	}

	cfg := modelspec.Model{
		Descriptor: modelspec.ModelDescriptor{
			Name:        r.Metadata.Name,
			Version:     r.Metadata.Version,
			Authors:     r.Metadata.Authors,
			Vendor:      r.Metadata.Owner,
			Description: r.Metadata.Description,
			SourceURL:   r.Metadata.SourceURL,
			Revision:    r.Metadata.Revision,
			Family:      r.Model.Family,
		},
		Config: modelspec.ModelConfig{
			Architecture: r.Model.Architecture,
			Format:       r.Model.Format,
			ParamSize:    r.Model.ParamSize,
			Precision:    r.Model.Precision,
			Quantization: r.Model.Quantization,
		},
		ModelFS: modelspec.ModelFS{Type: "layers", DiffIDs: diffIDs},
	}
	if r.Metadata.License != "" {
		cfg.Descriptor.Licenses = []string{r.Metadata.License}
	}
	if created != nil {
		cfg.Descriptor.CreatedAt = &ts
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	relJSON, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{
		registry.AnnotationRelease: string(relJSON),
		ocispec.AnnotationTitle:    r.Metadata.Name,
		ocispec.AnnotationVersion:  r.Metadata.Version,
	}
	if r.Metadata.License != "" {
		ann[ocispec.AnnotationLicenses] = r.Metadata.License
	}
	if r.Metadata.Owner != "" {
		ann[ocispec.AnnotationVendor] = r.Metadata.Owner
	}
	if r.Metadata.Revision != "" {
		ann[ocispec.AnnotationRevision] = r.Metadata.Revision
	}
	if r.Metadata.SourceURL != "" {
		ann[ocispec.AnnotationSource] = r.Metadata.SourceURL
	}
	if created != nil {
		ann[ocispec.AnnotationCreated] = ts.Format(time.RFC3339)
	}
	if r.BaseModel != "" {
		// Parse cannot fail here: Parse checked it.
		if base, err := registry.ParseRef(r.BaseModel); err == nil {
			ann[ocispec.AnnotationBaseImageName] = base.Name()
			ann[ocispec.AnnotationBaseImageDigest] = base.Digest.String()
		}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: registry.ArtifactTypeModel,
		Config: ocispec.Descriptor{
			MediaType: registry.MediaTypeModelConfig,
			Digest:    digest.FromBytes(cfgJSON),
			Size:      int64(len(cfgJSON)),
		},
		Layers:      descs,
		Annotations: ann,
	}
	mJSON, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &Artifact{Manifest: m, ManifestJSON: mJSON, Config: cfgJSON, Layers: layers}, nil
}
