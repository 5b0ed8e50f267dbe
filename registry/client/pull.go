package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/internal/writeback"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"
	"oras.land/oras-go/v2/registry/remote"
)

// PartialDir is where unfinished downloads wait inside the output
// directory, named by digest, until they are complete and verified. An
// interrupted pull resumes from them; nothing unverified is ever under a
// layer's final name.
const PartialDir = ".airlock-partial"

// PullOptions selects what to pull. The zero value pulls every layer.
type PullOptions struct {
	// Roles keeps only layers with one of these roles.
	Roles []registry.Role
	// Paths keeps only layers whose path matches one of these patterns
	// (path.Match syntax; a pattern also matches everything under a
	// directory it names).
	Paths []string
	// Cache speeds up checking files that are already in place.
	Cache *pack.HashCache
	// Progress is told of every byte downloaded or found in place.
	Progress pack.Progress
	// Retries is how many times one layer's download is resumed after a
	// broken connection within one pull (default 5).
	Retries int
}

// PulledFile is one layer written out.
type PulledFile struct {
	Path    string        `json:"path"`
	Role    registry.Role `json:"role"`
	Digest  digest.Digest `json:"digest"`
	Size    int64         `json:"size"`
	Present bool          `json:"present,omitempty"` // already in place with the right digest; nothing downloaded
	Resumed int64         `json:"resumed,omitempty"` // bytes taken from an earlier, interrupted download
}

// PullResult says what a pull did.
type PullResult struct {
	Release     *Release
	Files       []PulledFile
	Bytes       int64  // bytes downloaded
	ReleaseFile string // airlock.yaml written from the manifest, if any
	// OMSFile is model.sig, the release's OpenSSF Model Signing bundle,
	// written on a full pull of a release airlock sign signed.
	OMSFile string
}

// Selected reports whether a layer is kept by the options.
func (o PullOptions) Selected(p string, role registry.Role) bool {
	if len(o.Roles) > 0 {
		found := false
		for _, r := range o.Roles {
			if r == role {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(o.Paths) == 0 {
		return true
	}
	for _, pat := range o.Paths {
		pat = strings.TrimSuffix(pat, "/")
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
		// A pattern naming a directory keeps what is under it.
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if ok, _ := path.Match(pat, dir); ok {
				return true
			}
		}
	}
	return false
}

// Pull writes the layers of ref into dir, verified against their digests.
// Only selected layers are downloaded. Files already in dir with the right
// content are kept; interrupted downloads resume where they stopped. A
// full pull of an Airlock release also writes its release file, so the
// directory packs again to the same digest.
func (c *Client) Pull(ctx context.Context, ref registry.Ref, dir string, opts PullOptions) (*PullResult, error) {
	for _, p := range opts.Paths {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad path pattern %q: %w", p, err)
		}
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	rel, err := c.fetchRelease(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	type job struct {
		desc ocispec.Descriptor
		path string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, l := range rel.Manifest.Layers {
		p, err := LayerPath(l)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel.Ref, err)
		}
		if seen[p] {
			return nil, fmt.Errorf("%s: two layers write %s", rel.Ref, p)
		}
		seen[p] = true
		if opts.Selected(p, Role(l)) {
			jobs = append(jobs, job{l, p})
		}
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("nothing in %s matches the selection (roles %v, paths %v)", rel.Ref, opts.Roles, opts.Paths)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &PullResult{Release: rel, Files: make([]PulledFile, len(jobs))}
	var got atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for i, j := range jobs {
		g.Go(func() error {
			f, err := c.pullLayer(gctx, repo, ref, j.desc, j.path, dir, opts, &got)
			if err != nil {
				return fmt.Errorf("pulling %s: %w", j.path, err)
			}
			res.Files[i] = f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dir, PartialDir)) // only if empty
	res.Bytes = got.Load()
	if rel.File != nil && len(jobs) == len(rel.Manifest.Layers) && !seen[pack.DefaultFile] {
		name := filepath.Join(dir, pack.DefaultFile)
		if err := writeReleaseFile(name, rel.File); err != nil {
			return nil, err
		}
		res.ReleaseFile = name
	}
	if len(jobs) == len(rel.Manifest.Layers) && !seen[registry.OMSFile] {
		// model.sig covers every file, so only a full pull gets one.
		if res.OMSFile, err = c.writeOMS(ctx, repo, rel.Descriptor, dir); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// pullLayer makes dir/p hold the layer's content.
func (c *Client) pullLayer(ctx context.Context, repo *remote.Repository, ref registry.Ref, l ocispec.Descriptor, p, dir string, opts PullOptions, got *atomic.Int64) (PulledFile, error) {
	out := PulledFile{Path: p, Role: Role(l), Digest: l.Digest, Size: l.Size}
	if err := l.Digest.Validate(); err != nil || l.Digest.Algorithm() != digest.SHA256 {
		return out, fmt.Errorf("layer digest %q: only sha256 digests are accepted", l.Digest)
	}
	final := filepath.Join(dir, filepath.FromSlash(p))
	progress := func(n int64) {
		if opts.Progress != nil {
			opts.Progress(p, n)
		}
	}
	if fi, err := os.Lstat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == l.Size {
		d, ok := opts.Cache.Get(final)
		if !ok {
			d, err = pack.HashFile(ctx, final, l.Size, nil)
			if err == nil {
				opts.Cache.Put(final, d)
			}
		}
		if d == l.Digest {
			out.Present = true
			progress(l.Size)
			return out, nil
		}
	}
	partDir := filepath.Join(dir, PartialDir)
	if err := os.MkdirAll(partDir, 0o755); err != nil {
		return out, err
	}
	part := filepath.Join(partDir, l.Digest.Encoded())
	resumed, err := c.download(ctx, repo, ref, l, part, opts.Retries, progress, got)
	if err != nil {
		return out, err
	}
	out.Resumed = resumed
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return out, err
	}
	mode := fs.FileMode(0o644)
	if meta := l.Annotations[registry.AnnotationFileMetadata]; strings.Contains(meta, `"mode":493`) { // 0755
		mode = 0o755
	}
	if err := os.Chmod(part, mode); err != nil {
		return out, err
	}
	if err := os.Rename(part, final); err != nil {
		return out, err
	}
	opts.Cache.Put(final, l.Digest)
	return out, nil
}

// download fetches a blob into part, resuming from what part already
// holds with an HTTP Range request, and retrying broken connections. It
// verifies the digest before returning and returns how many bytes came
// from an earlier attempt.
func (c *Client) download(ctx context.Context, repo *remote.Repository, ref registry.Ref, l ocispec.Descriptor, part string, retries int, progress func(int64), got *atomic.Int64) (int64, error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	// What an earlier run left is hashed again: the digest covers it.
	have, err := io.Copy(h, io.LimitReader(f, l.Size))
	if err != nil {
		return 0, err
	}
	if have == l.Size {
		if pack.NewDigest(h) == l.Digest {
			progress(have)
			return have, nil
		}
		have = 0 // complete but wrong: start over
	}
	if have == 0 {
		h.Reset()
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, err
	}
	resumed := have
	progress(have)
	u := url.URL{Scheme: c.scheme(ref), Host: ref.Registry, Path: "/v2/" + ref.Repository + "/blobs/" + l.Digest.String()}
	offset := have
	for attempt := 0; ; attempt++ {
		n, restarted, err := c.fetchRange(ctx, repo, u.String(), offset, l.Size, f, h, progress)
		if restarted {
			resumed = 0
		}
		offset = n
		if err == nil {
			break
		}
		if ctx.Err() != nil || attempt >= retries || !transient(err) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff(attempt)):
		}
	}
	if offset != l.Size {
		return 0, fmt.Errorf("%w: got %d bytes, expected %d", registry.ErrDigestMismatch, offset, l.Size)
	}
	if d := pack.NewDigest(h); d != l.Digest {
		os.Remove(part)
		return 0, fmt.Errorf("%w: content is %s, expected %s", registry.ErrDigestMismatch, d, l.Digest)
	}
	// A write error can surface only at close; it must not be renamed
	// into place unnoticed.
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", part, err)
	}
	got.Add(l.Size - resumed)
	return resumed, nil
}

// errBroken marks a transfer cut short, which a Range request can resume.
var errBroken = errors.New("connection broken")

func transient(err error) bool {
	return errors.Is(err, errBroken) || errors.Is(err, io.ErrUnexpectedEOF)
}

func backoff(attempt int) time.Duration {
	return time.Duration(100*(1<<min(attempt, 5))) * time.Millisecond
}

// fetchRange GETs the blob from offset on and appends it to f. It returns
// the new end offset and whether the server ignored the range (so the file
// was restarted from zero).
func (c *Client) fetchRange(ctx context.Context, repo *remote.Repository, u string, offset, size int64, f *os.File, h hash.Hash, progress func(int64)) (int64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return offset, false, err
	}
	if offset > 0 {
		// A closed range: some registries (go-containerregistry's)
		// answer an open one, bytes=N-, with 416.
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(size-1, 10))
	}
	resp, err := repo.Client.Do(req)
	if err != nil {
		return offset, false, fmt.Errorf("%w: %w", errBroken, err)
	}
	defer resp.Body.Close()
	restarted := false
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != offset {
			return offset, false, fmt.Errorf("registry answered range %d- with Content-Range %q", offset, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if offset > 0 { // the registry does not do ranges: start over
			restarted = true
			h.Reset()
			if err := f.Truncate(0); err != nil {
				return offset, restarted, err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return offset, restarted, err
			}
			progress(-offset)
			offset = 0
		}
	default:
		err := responseError(resp)
		if resp.StatusCode >= 500 {
			err = fmt.Errorf("%w: %w", errBroken, err)
		}
		return offset, false, err
	}
	n, err := writeback.Copy(ctx, f, h, resp.Body, writeback.CopyOptions{Progress: progress})
	offset += n
	if err != nil {
		if ctx.Err() != nil {
			return offset, restarted, ctx.Err()
		}
		if errors.Is(err, writeback.ErrWrite) {
			return offset, restarted, err
		}
		return offset, restarted, fmt.Errorf("%w after %d bytes: %w", errBroken, offset, err)
	}
	return offset, restarted, nil
}

// writeReleaseFile writes the release file carried by the manifest.
func writeReleaseFile(name string, r *pack.Release) error {
	b, err := yaml.Marshal(r)
	if err != nil {
		return err
	}
	head := "# Written by airlock pull from the dev.airlock.release annotation.\n"
	return os.WriteFile(name, append([]byte(head), b...), 0o644)
}
