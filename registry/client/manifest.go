package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
	modelspec "github.com/modelpack/model-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// maxManifest is the manifest size registries must accept and Airlock
// will read (distribution-spec v1.1, "Pushing Manifests": 4 MiB).
const maxManifest = 4 << 20

// Release is a release's manifest as read from a registry, verified
// against its digest.
type Release struct {
	Ref        registry.Ref // pinned to Descriptor.Digest
	Descriptor ocispec.Descriptor
	Manifest   ocispec.Manifest
	Raw        []byte           // manifest bytes as served
	Config     *modelspec.Model // nil if the config is not a ModelPack config
	RawConfig  []byte
	File       *pack.Release // the dev.airlock.release annotation, when present
}

// fetchRelease resolves ref and reads its manifest and config, verifying
// both against their digests.
func (c *Client) fetchRelease(ctx context.Context, repo *remote.Repository, ref registry.Ref) (*Release, error) {
	desc, rc, err := repo.Manifests().FetchReference(ctx, ref.Reference())
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", ref, mapErr(err))
	}
	raw, err := readVerified(rc, desc, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", ref, err)
	}
	if ref.Digest != "" && desc.Digest != ref.Digest {
		return nil, fmt.Errorf("%w: asked for %s, registry served %s", registry.ErrDigestMismatch, ref.Digest, desc.Digest)
	}
	r := &Release{Ref: ref.WithDigest(desc.Digest), Descriptor: desc, Raw: raw}
	if err := json.Unmarshal(raw, &r.Manifest); err != nil {
		return nil, fmt.Errorf("parsing manifest of %s: %w", ref, err)
	}
	switch mt := r.Manifest.MediaType; {
	case mt == ocispec.MediaTypeImageIndex || desc.MediaType == ocispec.MediaTypeImageIndex ||
		desc.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json":
		return nil, fmt.Errorf("%w: %s is an image index, not a release manifest", registry.ErrNotRelease, ref)
	}
	r.Descriptor.ArtifactType = r.Manifest.ArtifactType
	cfg := r.Manifest.Config
	if cfg.Size > 0 && cfg.Size <= maxManifest {
		rc, err := repo.Blobs().Fetch(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("fetching config of %s: %w", ref, mapErr(err))
		}
		if r.RawConfig, err = readVerified(rc, cfg, maxManifest); err != nil {
			return nil, fmt.Errorf("reading config of %s: %w", ref, err)
		}
		if cfg.MediaType == registry.MediaTypeModelConfig {
			var m modelspec.Model
			if err := json.Unmarshal(r.RawConfig, &m); err != nil {
				return nil, fmt.Errorf("parsing ModelPack config of %s: %w", ref, err)
			}
			r.Config = &m
		}
	}
	if s, ok := r.Manifest.Annotations[registry.AnnotationRelease]; ok {
		var rel pack.Release
		if err := json.Unmarshal([]byte(s), &rel); err != nil {
			return nil, fmt.Errorf("parsing %s annotation of %s: %w", registry.AnnotationRelease, ref, err)
		}
		r.File = &rel
	}
	return r, nil
}

// readVerified reads at most limit bytes and checks them against desc.
func readVerified(rc io.ReadCloser, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	defer rc.Close()
	if desc.Size > limit {
		return nil, fmt.Errorf("%d bytes is over the %d-byte limit", desc.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("over the %d-byte limit", limit)
	}
	if got := digest.FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%w: content is %s, expected %s", registry.ErrDigestMismatch, got, desc.Digest)
	}
	return b, nil
}

// LayerPath returns the relative path a layer is written to, from
// ModelPack's filepath annotation or else the OCI title, and refuses paths
// that would land outside the target directory.
func LayerPath(l ocispec.Descriptor) (string, error) {
	p := l.Annotations[registry.AnnotationFilepath]
	if p == "" {
		p = l.Annotations[ocispec.AnnotationTitle]
	}
	if p == "" {
		return "", fmt.Errorf("layer %s has no %s or %s annotation", l.Digest, registry.AnnotationFilepath, ocispec.AnnotationTitle)
	}
	clean := path.Clean(p)
	if strings.ContainsAny(p, "\\\x00") || path.IsAbs(p) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("layer %s has unsafe path %q", l.Digest, p)
	}
	return clean, nil
}

// Role returns a layer's Airlock role, or "" if it has none.
func Role(l ocispec.Descriptor) registry.Role {
	return registry.Role(l.Annotations[registry.AnnotationRole])
}
