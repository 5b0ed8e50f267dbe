package store

import (
	"context"
	_ "crypto/sha256" // digest algorithms must be linked to be Available
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
)

// ManifestLister is an optional capability of a Meta: listing a
// repository's manifest records. Fsck uses it when the Meta has it;
// without it, Fsck finds manifests by probing every referenced and linked
// digest in every repository, which is quadratic.
type ManifestLister interface {
	Manifests(ctx context.Context, repo string, fn func(Manifest) error) error
}

// MaxManifestSize bounds how much of a manifest blob Fsck reads to parse
// it; a larger manifest is reported, not read.
const MaxManifestSize = 4 << 20

// FsckOptions configures Fsck. The zero value checks the metadata against
// the blobs without reading layer contents.
type FsckOptions struct {
	// VerifyContent re-hashes every blob and compares it with its name.
	VerifyContent bool
}

// Problem kinds Fsck reports.
const (
	ProblemMissingBlob  = "missing-blob"  // a manifest or its ref has no blob
	ProblemDanglingLink = "dangling-link" // a repository links a blob that does not exist
	ProblemDanglingTag  = "dangling-tag"  // a tag points at a manifest the repository lacks
	ProblemCorruptBlob  = "corrupt-blob"  // a blob's bytes do not hash to its name
	ProblemBadManifest  = "bad-manifest"  // a manifest blob does not parse, or disagrees with its record
)

// Problem is one inconsistency.
type Problem struct {
	Kind       string
	Repository string
	Digest     digest.Digest
	Detail     string
}

func (p Problem) String() string {
	s := p.Kind + " " + string(p.Digest)
	if p.Repository != "" {
		s += " in " + p.Repository
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// FsckReport is what Fsck checked and found.
type FsckReport struct {
	Blobs, Manifests, Links, Tags int
	Problems                      []Problem
}

// OK reports whether Fsck found nothing wrong.
func (r FsckReport) OK() bool { return len(r.Problems) == 0 }

// Fsck checks that the metadata and the blobs agree: every manifest and
// every blob it references exists, every link and tag points at
// something that exists, every manifest blob parses and names the refs
// its record has, and, with VerifyContent, every blob hashes to its name.
// Inconsistencies are reported as Problems; the error is only for
// failures to read.
func Fsck(ctx context.Context, blobs Blobs, meta Meta, opts FsckOptions) (FsckReport, error) {
	var rep FsckReport
	problem := func(kind, repo string, d digest.Digest, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Repository: repo, Digest: d, Detail: fmt.Sprintf(format, args...)})
	}

	sizes := map[digest.Digest]int64{}
	err := blobs.Walk(ctx, func(d digest.Digest, size int64, _ time.Time) error {
		sizes[d] = size
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("walking blobs: %w", err)
	}
	rep.Blobs = len(sizes)

	if opts.VerifyContent {
		for d := range sizes {
			ok, detail, err := verify(ctx, blobs, d)
			if err != nil {
				return rep, err
			}
			if !ok {
				problem(ProblemCorruptBlob, "", d, "%s", detail)
			}
		}
	}

	var links []Link
	err = meta.Linked(ctx, func(repo string, d digest.Digest) error {
		links = append(links, Link{Repository: repo, Digest: d})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("listing links: %w", err)
	}
	rep.Links = len(links)
	for _, l := range links {
		if _, ok := sizes[l.Digest]; !ok {
			problem(ProblemDanglingLink, l.Repository, l.Digest, "linked blob does not exist")
		}
	}

	repos, err := meta.Repositories(ctx)
	if err != nil {
		return rep, fmt.Errorf("listing repositories: %w", err)
	}
	parsed := map[digest.Digest]parsedManifest{}
	for _, repo := range repos {
		ms, err := manifests(ctx, meta, repo, links)
		if err != nil {
			return rep, err
		}
		rep.Manifests += len(ms)
		for _, m := range ms {
			size, ok := sizes[m.Digest]
			if !ok {
				problem(ProblemMissingBlob, repo, m.Digest, "manifest blob does not exist")
			} else if m.Size != size {
				problem(ProblemBadManifest, repo, m.Digest, "record says %d bytes, blob has %d", m.Size, size)
			}
			for _, r := range m.Refs {
				if _, ok := sizes[r]; !ok {
					problem(ProblemMissingBlob, repo, r, "referenced by manifest %s", m.Digest)
				}
			}
			if !ok {
				continue
			}
			p, seen := parsed[m.Digest]
			if !seen {
				if p, err = parseManifest(ctx, blobs, m.Digest, size); err != nil {
					return rep, err
				}
				parsed[m.Digest] = p
			}
			if p.err != "" {
				problem(ProblemBadManifest, repo, m.Digest, "%s", p.err)
				continue
			}
			if !sameSet(p.refs, m.Refs) {
				problem(ProblemBadManifest, repo, m.Digest, "record refs %v, manifest refs %v", m.Refs, p.refs)
			}
			if p.subject != m.Subject {
				problem(ProblemBadManifest, repo, m.Digest, "record subject %q, manifest subject %q", m.Subject, p.subject)
			}
		}
		if err := checkTags(ctx, meta, repo, &rep, problem); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// manifests lists a repository's manifest records, directly when meta is
// a ManifestLister and otherwise by probing every digest that could be one.
func manifests(ctx context.Context, meta Meta, repo string, links []Link) ([]Manifest, error) {
	var out []Manifest
	if ml, ok := meta.(ManifestLister); ok {
		err := ml.Manifests(ctx, repo, func(m Manifest) error {
			out = append(out, m)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("listing manifests of %s: %w", repo, err)
		}
		return out, nil
	}
	// Every manifest's own digest is in Referenced.
	var candidates []digest.Digest
	err := meta.Referenced(ctx, func(d digest.Digest) error {
		candidates = append(candidates, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marking: %w", err)
	}
	seen := map[digest.Digest]bool{}
	for _, d := range candidates {
		if seen[d] {
			continue
		}
		seen[d] = true
		m, err := meta.Manifest(ctx, repo, d)
		if errors.Is(err, ErrManifestUnknown) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s in %s: %w", d, repo, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func checkTags(ctx context.Context, meta Meta, repo string, rep *FsckReport, problem func(kind, repo string, d digest.Digest, format string, args ...any)) error {
	tags, err := meta.Tags(ctx, repo, "", 0)
	if errors.Is(err, ErrNameUnknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	rep.Tags += len(tags)
	for _, tag := range tags {
		d, err := meta.Resolve(ctx, repo, tag)
		if errors.Is(err, ErrTagUnknown) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("resolving %s:%s: %w", repo, tag, err)
		}
		_, err = meta.Manifest(ctx, repo, d)
		if errors.Is(err, ErrManifestUnknown) {
			problem(ProblemDanglingTag, repo, d, "tag %s points at a manifest the repository does not hold", tag)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading manifest %s in %s: %w", d, repo, err)
		}
	}
	return nil
}

// verify re-hashes one blob. ok is false with a reason when the bytes do
// not match; err is for failures to read.
func verify(ctx context.Context, blobs Blobs, d digest.Digest) (ok bool, detail string, err error) {
	if !d.Algorithm().Available() {
		return false, "unsupported algorithm", nil
	}
	r, _, err := blobs.Open(ctx, d)
	if errors.Is(err, ErrBlobUnknown) {
		return true, "", nil // deleted since the walk
	}
	if err != nil {
		return false, "", fmt.Errorf("opening %s: %w", d, err)
	}
	defer r.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, r); err != nil {
		return false, "", fmt.Errorf("reading %s: %w", d, err)
	}
	if !v.Verified() {
		return false, "content does not hash to its name", nil
	}
	return true, "", nil
}

// parsedManifest is what Fsck learns from a manifest blob; err is a parse
// problem, not a read failure.
type parsedManifest struct {
	refs    []digest.Digest
	subject digest.Digest
	err     string
}

// manifestJSON covers image manifests, indexes and their Docker
// equivalents: the fields whose digests become Refs.
type manifestJSON struct {
	Config *struct {
		Digest digest.Digest `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest digest.Digest `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest digest.Digest `json:"digest"`
	} `json:"manifests"`
	Subject *struct {
		Digest digest.Digest `json:"digest"`
	} `json:"subject"`
}

func parseManifest(ctx context.Context, blobs Blobs, d digest.Digest, size int64) (parsedManifest, error) {
	if size > MaxManifestSize {
		return parsedManifest{err: fmt.Sprintf("%d bytes, over the %d-byte limit", size, MaxManifestSize)}, nil
	}
	r, _, err := blobs.Open(ctx, d)
	if errors.Is(err, ErrBlobUnknown) {
		return parsedManifest{err: "manifest blob disappeared"}, nil
	}
	if err != nil {
		return parsedManifest{}, fmt.Errorf("opening manifest %s: %w", d, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return parsedManifest{}, fmt.Errorf("reading manifest %s: %w", d, err)
	}
	var m manifestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return parsedManifest{err: "does not parse as JSON: " + err.Error()}, nil
	}
	var p parsedManifest
	if m.Config != nil && m.Config.Digest != "" {
		p.refs = append(p.refs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		p.refs = append(p.refs, l.Digest)
	}
	for _, c := range m.Manifests {
		p.refs = append(p.refs, c.Digest)
	}
	if m.Subject != nil {
		p.subject = m.Subject.Digest
	}
	return p, nil
}

// sameSet compares digests as sets: Refs need not keep order or repeats.
func sameSet(a, b []digest.Digest) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
