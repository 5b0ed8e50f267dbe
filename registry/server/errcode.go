package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/store"
)

// Code is a distribution-spec error code
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#error-codes).
type Code string

// The codes of the spec's table, plus RANGE_INVALID's status (416) which
// the spec gives without a code of its own.
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
)

// Error is an API error: a code, the HTTP status it is answered with, and
// a message. Handlers return it (or a store or registry error that apiError
// maps) and the edge writes it once, in the spec's envelope.
type Error struct {
	Code    Code
	Status  int
	Message string
	Detail  any
	Err     error // the cause, for the log; never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorf builds an Error; status 0 means the code's usual status.
func errorf(code Code, status int, format string, a ...any) *Error {
	if status == 0 {
		status = defaultStatus(code)
	}
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, a...)}
}

func defaultStatus(c Code) int {
	switch c {
	case CodeBlobUnknown, CodeBlobUploadUnknown, CodeManifestUnknown, CodeNameUnknown:
		return http.StatusNotFound
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeDenied:
		return http.StatusForbidden
	case CodeUnsupported:
		return http.StatusMethodNotAllowed
	case CodeTooManyRequests:
		return http.StatusTooManyRequests
	default:
		return http.StatusBadRequest
	}
}

// apiError maps any error a handler returns to the API error it is
// answered with: the one place where store and registry errors meet HTTP.
// Unknown errors are 500s whose cause stays in the log.
func apiError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, registry.ErrTagProtected):
		return &Error{Code: CodeDenied, Status: http.StatusForbidden, Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrBlobUnknown):
		return &Error{Code: CodeBlobUnknown, Status: http.StatusNotFound, Message: "blob unknown to registry", Err: err}
	case errors.Is(err, store.ErrUploadUnknown):
		return &Error{Code: CodeBlobUploadUnknown, Status: http.StatusNotFound, Message: "blob upload unknown to registry", Err: err}
	case errors.Is(err, store.ErrManifestUnknown), errors.Is(err, store.ErrTagUnknown):
		return &Error{Code: CodeManifestUnknown, Status: http.StatusNotFound, Message: "manifest unknown", Err: err}
	case errors.Is(err, store.ErrNameUnknown):
		return &Error{Code: CodeNameUnknown, Status: http.StatusNotFound, Message: "repository name not known to registry", Err: err}
	case errors.Is(err, store.ErrDigestInvalid):
		return &Error{Code: CodeDigestInvalid, Status: http.StatusBadRequest, Message: "provided digest did not match uploaded content", Err: err}
	case errors.Is(err, store.ErrSizeInvalid):
		return &Error{Code: CodeSizeInvalid, Status: http.StatusBadRequest, Message: "provided length did not match content length", Err: err}
	case errors.Is(err, store.ErrRangeInvalid):
		return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable, Message: "chunk does not start where the upload ends", Err: err}
	}
	return &Error{Code: "UNKNOWN", Status: http.StatusInternalServerError, Message: "internal error", Err: err}
}

type envelope struct {
	Errors []wireError `json:"errors"`
}

type wireError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers e in the spec's envelope. A 500's envelope carries
// no cause: the log has it.
func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(envelope{Errors: []wireError{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
}
