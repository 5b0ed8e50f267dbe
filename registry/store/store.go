package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors every implementation returns (wrapped is fine), so the server can
// map them to distribution-spec error codes in one place.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrTagUnknown      = errors.New("tag unknown")
	ErrNameUnknown     = errors.New("repository unknown")
	// ErrDigestInvalid: the bytes do not hash to the digest asked for, or
	// the digest's algorithm is not supported (sha256 and sha512 are).
	ErrDigestInvalid = errors.New("digest invalid")
	// ErrSizeInvalid: an upload's size is not the size asked for.
	ErrSizeInvalid = errors.New("size invalid")
	// ErrRangeInvalid: a chunk does not start where the upload ends.
	ErrRangeInvalid = errors.New("range invalid")
)

// Blobs is content-addressed storage. Blobs are immutable; the only way in
// is an Upload committed under the digest its bytes hash to.
type Blobs interface {
	// Stat returns a blob's size, or ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the blob for reading; Seek serves HTTP Range requests.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
	// Delete removes a blob; deleting a missing blob returns ErrBlobUnknown.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every committed blob, in no particular order.
	Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error

	// NewUpload starts an upload session and returns it open for writing.
	NewUpload(ctx context.Context) (Upload, error)
	// ResumeUpload reopens a session by ID, also after a restart, at the
	// byte it ended; ErrUploadUnknown if it does not exist.
	ResumeUpload(ctx context.Context, id string) (Upload, error)
	// Uploads lists open sessions (for status and for cleaning up stale
	// ones).
	Uploads(ctx context.Context, fn func(id string, size int64, modified time.Time) error) error
}

// Upload is an open upload session. It is not safe for concurrent use; the
// server serialises requests on one session.
type Upload interface {
	// ID names the session in upload URLs; it is unguessable.
	ID() string
	// Size is how many bytes the session holds.
	Size() int64
	// Write appends, hashing as it goes, so that Commit need not read the
	// data again for sha256.
	io.Writer
	// Commit checks the bytes against d (and size, when size >= 0), makes
	// them durable and visible as blob d, and ends the session. On a
	// mismatch it returns ErrDigestInvalid or ErrSizeInvalid and the
	// session stays open. Committing a blob that already exists succeeds.
	Commit(ctx context.Context, d digest.Digest, size int64) error
	// Cancel ends the session and deletes its data.
	Cancel(ctx context.Context) error
	// Close releases the session for now, keeping its data for
	// ResumeUpload. It must be called after Write even if the request
	// failed half way: what was written before the failure is kept.
	Close() error
}

// Manifest is what the metadata store records about a manifest in a
// repository. The manifest's bytes are a blob under Digest.
type Manifest struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"` // artifactType, else config mediaType (distribution-spec referrers rule)
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Subject is the manifest this one refers to (OCI 1.1), if any.
	Subject digest.Digest `json:"subject,omitempty"`
	// Refs are the blobs (config, layers) and child manifests (of an
	// index) that must exist in the repository for this manifest to be
	// valid; garbage collection keeps them.
	Refs    []digest.Digest `json:"refs,omitempty"`
	Created time.Time       `json:"created"`
}

// Event is one entry of the audit log.
type Event struct {
	Time       time.Time     `json:"time"`
	Actor      string        `json:"actor"`  // authenticated user, or "anonymous"
	Action     string        `json:"action"` // push-manifest, delete-manifest, tag, untag, delete-blob, mount-blob, gc
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest,omitempty"`
	Tag        string        `json:"tag,omitempty"`
	// Previous is the digest a moved or deleted tag pointed at.
	Previous digest.Digest `json:"previous,omitempty"`
	Detail   string        `json:"detail,omitempty"`
}

// Meta is the metadata store. Every method is atomic.
type Meta interface {
	// LinkBlob records that repo holds blob d (after an upload or a
	// cross-repository mount): a blob is served from a repository only
	// if linked there.
	LinkBlob(ctx context.Context, repo string, d digest.Digest) error
	// BlobLinked reports whether repo holds d.
	BlobLinked(ctx context.Context, repo string, d digest.Digest) (bool, error)
	// UnlinkBlob removes the link (DELETE of a blob); ErrBlobUnknown if
	// there was none.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error

	// PutManifest records m in repo and, when tag is not empty, points
	// tag at it, in one transaction, and appends ev to the audit log. It
	// returns the digest the tag pointed at before ("" if new).
	PutManifest(ctx context.Context, repo string, m Manifest, tag string, ev Event) (previous digest.Digest, err error)
	// Manifest returns a manifest record; ErrManifestUnknown if repo does
	// not hold it.
	Manifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error)
	// DeleteManifest removes a manifest and every tag pointing at it.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest, ev Event) error
	// Resolve returns the digest a tag points at; ErrTagUnknown.
	Resolve(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteTag removes a tag; ErrTagUnknown if missing.
	DeleteTag(ctx context.Context, repo, tag string, ev Event) error
	// Tags lists tags in lexical order after last, at most n (n <= 0: all);
	// ErrNameUnknown if the repository has nothing.
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	// Referrers lists the manifests in repo whose subject is d, filtered
	// by artifactType when it is not empty.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]Manifest, error)
	// Repositories lists repository names in lexical order.
	Repositories(ctx context.Context) ([]string, error)

	// Referenced calls fn for every blob digest that some manifest in some
	// repository needs (the manifest blobs themselves and their Refs):
	// the live set of garbage collection.
	Referenced(ctx context.Context, fn func(d digest.Digest) error) error
	// Linked calls fn for every (repository, blob) link.
	Linked(ctx context.Context, fn func(repo string, d digest.Digest) error) error

	// PutUpload remembers which repository an upload session belongs to.
	PutUpload(ctx context.Context, id, repo string, started time.Time) error
	// UploadRepo returns the repository of a session; ErrUploadUnknown.
	UploadRepo(ctx context.Context, id string) (string, error)
	// DeleteUpload forgets a session.
	DeleteUpload(ctx context.Context, id string) error

	// Audit appends an event; Events reads them back in order, those at or
	// after since.
	Audit(ctx context.Context, ev Event) error
	Events(ctx context.Context, since time.Time, fn func(Event) error) error

	Close() error
}
