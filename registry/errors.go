package registry

import "errors"

// Sentinel errors of the registry area. Commands map them to exit codes in
// cmd/airlock; libraries only wrap them.
var (
	// ErrInvalidReference marks a reference that does not parse.
	ErrInvalidReference = errors.New("invalid reference")
	// ErrNotFound marks a manifest, blob or tag the registry does not have.
	ErrNotFound = errors.New("not found")
	// ErrDigestMismatch marks content whose digest is not the one asked
	// for. Nothing with a mismatched digest is ever written under its
	// final name.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnauthorized marks a registry that refused the credentials, or
	// wants some and none were found in the Docker config.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDenied marks a request the registry understood and refused on
	// purpose (error code DENIED), such as moving a protected tag to a
	// digest without a pass verdict.
	ErrDenied = errors.New("denied by the registry")
	// ErrNotRelease marks an artifact that is not a ModelPack release.
	ErrNotRelease = errors.New("not an Airlock/ModelPack release")
)
