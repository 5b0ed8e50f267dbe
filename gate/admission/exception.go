package admission

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// ExceptionAnnotation carries a break-glass exception on the object (and,
// for a pod template, on the template, so that its pods carry it too).
const ExceptionAnnotation = "airlock.dev/break-glass"

// ExceptionSchema names the exception document.
const ExceptionSchema = "https://airlock.dev/admission/exception/v1"

// DefaultExceptionMaxTTL bounds how long an exception may last.
const DefaultExceptionMaxTTL = 24 * time.Hour

// Exception is a signed, expiring permission to run named digests in
// namespaces without a pass verdict: break-glass for an incident. It
// never lifts the kill-switch (revoked) nor the digest requirement.
type Exception struct {
	Schema string `json:"schema"`
	// Digests are the releases it admits.
	Digests []string `json:"digests"`
	// Namespace is a namespace pattern (path.Match).
	Namespace string `json:"namespace"`
	// By, Reason and Ticket say who broke the glass and why; all required.
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Ticket string    `json:"ticket"`
	Issued time.Time `json:"issued"`
	// Expires ends it; at most the config's max TTL after Issued.
	Expires time.Time `json:"expires"`
}

// SignatureVerifier checks a signature over a payload with the trusted
// break-glass keys and names the key that made it.
type SignatureVerifier interface {
	VerifySignature(payload, sig []byte) (key string, err error)
}

// EncodeException is the annotation value for an exception signed by sig:
// base64url(payload) "." base64url(signature).
func EncodeException(payload, sig []byte) string {
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// checkedException is an exception whose signature and terms were
// checked, with the key that signed it.
type checkedException struct {
	Exception
	key string
}

// parseException verifies an annotation value and the exception's terms
// for namespace at now.
func parseException(value string, v SignatureVerifier, namespace string, maxTTL time.Duration, now time.Time) (*checkedException, error) {
	if v == nil {
		return nil, errors.New("break-glass exceptions are not accepted here (admission.yaml has no break_glass.trust)")
	}
	p, s, ok := strings.Cut(strings.TrimSpace(value), ".")
	if !ok {
		return nil, errors.New("the break-glass annotation is not PAYLOAD.SIGNATURE (airlock webhook exception writes it)")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sig, err2 := base64.RawURLEncoding.DecodeString(s)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("the break-glass annotation is not base64url: %w", err)
	}
	key, err := v.VerifySignature(payload, sig)
	if err != nil {
		return nil, fmt.Errorf("the break-glass exception's signature is not by a trusted break-glass key: %w", err)
	}
	var e Exception
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("the break-glass exception does not decode: %w", err)
	}
	switch {
	case e.Schema != ExceptionSchema:
		return nil, fmt.Errorf("the break-glass exception's schema is %q, not %s", e.Schema, ExceptionSchema)
	case e.By == "" || e.Reason == "" || e.Ticket == "":
		return nil, errors.New("the break-glass exception must say by, reason and ticket")
	case len(e.Digests) == 0:
		return nil, errors.New("the break-glass exception names no digest")
	case e.Issued.IsZero() || e.Expires.IsZero():
		return nil, errors.New("the break-glass exception must have issued and expires")
	case e.Expires.Sub(e.Issued) > maxTTL:
		return nil, fmt.Errorf("the break-glass exception lasts %s, longer than the %s allowed", e.Expires.Sub(e.Issued), maxTTL)
	case !now.Before(e.Expires):
		return nil, fmt.Errorf("the break-glass exception by %s (%s) expired at %s", e.By, e.Ticket, e.Expires.Format(time.RFC3339))
	case now.Before(e.Issued.Add(-5 * time.Minute)):
		return nil, fmt.Errorf("the break-glass exception is issued in the future (%s)", e.Issued.Format(time.RFC3339))
	}
	if ok, _ := path.Match(e.Namespace, namespace); !ok {
		return nil, fmt.Errorf("the break-glass exception by %s (%s) is for namespace %q, not %q", e.By, e.Ticket, e.Namespace, namespace)
	}
	return &checkedException{Exception: e, key: key}, nil
}

// covers reports whether the exception admits digest.
func (e *checkedException) covers(digest string) bool {
	return e != nil && slices.Contains(e.Digests, digest)
}

// annotations are the break-glass annotations of an object and its pod
// template, where there is one. An object that does not name the
// annotation is not decoded again (the common case, on every request).
func annotations(raw []byte) []string {
	if !bytes.Contains(raw, []byte("break-glass")) { // its key's last part: JSON may escape the slash
		return nil
	}
	var o struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"template"`
			JobTemplate struct {
				Spec struct {
					Template struct {
						Metadata struct {
							Annotations map[string]string `json:"annotations"`
						} `json:"metadata"`
					} `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if json.Unmarshal(raw, &o) != nil {
		return nil
	}
	var out []string
	for _, m := range []map[string]string{o.Metadata.Annotations, o.Spec.Template.Metadata.Annotations, o.Spec.JobTemplate.Spec.Template.Metadata.Annotations} {
		if v, ok := m[ExceptionAnnotation]; ok {
			out = append(out, v)
		}
	}
	return out
}
