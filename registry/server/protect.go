package server

import (
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/store"
)

// protected reports whether a rule covers repo:tag. A rule whose pattern
// does not parse covers everything: protection fails closed.
func (s *Server) protected(repo, tag string) bool {
	for _, rule := range s.cfg.ProtectedTags {
		if matchOrBad(rule.Repo, repo) && matchOrBad(rule.Tag, tag) {
			return true
		}
	}
	return false
}

// protectsRepo reports whether some rule covers tags of repo.
func (s *Server) protectsRepo(repo string) bool {
	for _, rule := range s.cfg.ProtectedTags {
		if matchOrBad(rule.Repo, repo) {
			return true
		}
	}
	return false
}

func matchOrBad(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return ok || err != nil
}

// isRelease reports whether d in repo is a ModelPack release, whose tags
// ImmutableReleaseTags pins.
func (s *Server) isRelease(r *http.Request, repo string, d digest.Digest) (bool, error) {
	m, err := s.cfg.Meta.Manifest(r.Context(), repo, d)
	if errors.Is(err, store.ErrManifestUnknown) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading tagged manifest: %w", err)
	}
	return registry.IsModelArtifact(m.ArtifactType, m.ArtifactType), nil
}

// checkTagMove decides whether repo:tag may point at target, and returns
// where it points now. Re-pushing the digest a tag already has is never a
// move. The caller holds the tag's lock.
func (s *Server) checkTagMove(r *http.Request, repo, tag string, target ocispec.Descriptor) (digest.Digest, error) {
	ctx := r.Context()
	previous, err := s.cfg.Meta.Resolve(ctx, repo, tag)
	if errors.Is(err, store.ErrTagUnknown) {
		previous, err = "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolving tag: %w", err)
	}
	if previous == target.Digest {
		return previous, nil
	}
	// A guarded tag (an environment tag such as prod) moves by verdict
	// only: the guard decides, release immutability does not apply.
	guarded := s.protected(repo, tag) && s.cfg.Guard != nil
	if previous != "" && s.cfg.ImmutableReleaseTags && !guarded {
		release, err := s.isRelease(r, repo, previous)
		if err != nil {
			return "", err
		}
		if release {
			return "", fmt.Errorf("%w: %s:%s points at release %s; release tags are immutable", registry.ErrTagProtected, repo, tag, previous)
		}
	}
	if !s.protected(repo, tag) {
		return previous, nil
	}
	if s.cfg.Guard == nil {
		if previous == "" {
			return previous, nil
		}
		return "", fmt.Errorf("%w: %s:%s points at %s and no tag guard is configured to move it", registry.ErrTagProtected, repo, tag, previous)
	}
	if err := s.cfg.Guard.AllowTag(ctx, repo, tag, target, previous); err != nil {
		if errors.Is(err, registry.ErrTagProtected) {
			return "", fmt.Errorf("tag guard refused %s:%s: %w", repo, tag, err)
		}
		return "", fmt.Errorf("%w: tag guard failed for %s:%s: %w", registry.ErrTagProtected, repo, tag, err)
	}
	return previous, nil
}

// checkTagDelete refuses deleting a protected tag or a release's tag:
// deleting and pushing again would otherwise move it.
func (s *Server) checkTagDelete(r *http.Request, repo, tag string, d digest.Digest) error {
	if s.protected(repo, tag) {
		return fmt.Errorf("%w: %s:%s is protected and cannot be deleted", registry.ErrTagProtected, repo, tag)
	}
	if s.cfg.ImmutableReleaseTags {
		release, err := s.isRelease(r, repo, d)
		if err != nil {
			return err
		}
		if release {
			return fmt.Errorf("%w: %s:%s points at release %s; release tags are immutable", registry.ErrTagProtected, repo, tag, d)
		}
	}
	return nil
}

// checkManifestDelete refuses deleting a manifest that a protected tag or
// release tag points at, since that deletes the tag too.
func (s *Server) checkManifestDelete(r *http.Request, repo string, d digest.Digest) error {
	ctx := r.Context()
	release := false
	if s.cfg.ImmutableReleaseTags {
		var err error
		if release, err = s.isRelease(r, repo, d); err != nil {
			return err
		}
	}
	if !release && !s.protectsRepo(repo) {
		return nil
	}
	tags, err := s.cfg.Meta.Tags(ctx, repo, "", 0)
	if errors.Is(err, store.ErrNameUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing tags: %w", err)
	}
	for _, tag := range tags {
		td, err := s.cfg.Meta.Resolve(ctx, repo, tag)
		if err != nil || td != d {
			continue // a tag deleted meanwhile is no longer in the way
		}
		if release || s.protected(repo, tag) {
			return fmt.Errorf("%w: %s:%s points at %s; delete refused", registry.ErrTagProtected, repo, tag, d)
		}
	}
	return nil
}
