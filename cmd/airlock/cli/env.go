package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Every environment variable Airlock reads is declared here, and nowhere
// below cmd/ reads the environment.
const (
	// EnvSourceDateEpoch sets the creation time written into packed
	// releases (https://reproducible-builds.org/specs/source-date-epoch/).
	// Unset, releases carry no time and their digest depends on content
	// only.
	EnvSourceDateEpoch = "SOURCE_DATE_EPOCH"
	// EnvCacheDir overrides where Airlock caches file digests
	// (default: the user cache directory, e.g. ~/.cache/airlock).
	EnvCacheDir = "AIRLOCK_CACHE_DIR"
	// EnvDockerConfig is read by the credential store, as docker, oras
	// and crane read it.
	EnvDockerConfig = "DOCKER_CONFIG"
	// EnvPassword is the password of a private key (airlock key generate,
	// sign); EnvCosignPassword is read when it is unset, so scripts written
	// for cosign work unchanged. Set and empty means an empty password.
	EnvPassword       = "AIRLOCK_PASSWORD"
	EnvCosignPassword = "COSIGN_PASSWORD"
	// EnvOpenAIKey is sent as the bearer token to OpenAI-compatible
	// endpoints (airlock bench, eval), as OpenAI's own clients send it.
	EnvOpenAIKey = "OPENAI_API_KEY"
	// EnvGitHubStepSummary is the file GitHub Actions shows as a step's
	// summary; airlock eval --markdown appends to it rather than replace
	// what earlier steps wrote.
	EnvGitHubStepSummary = "GITHUB_STEP_SUMMARY"
)

// passwordFromEnv returns the key password from the environment, and
// whether one was set.
func passwordFromEnv() ([]byte, bool) {
	for _, k := range []string{EnvPassword, EnvCosignPassword} {
		if v, ok := os.LookupEnv(k); ok {
			return []byte(v), true
		}
	}
	return nil, false
}

// sourceDateEpoch returns the time SOURCE_DATE_EPOCH asks for, or nil.
func sourceDateEpoch() (*time.Time, error) {
	v, ok := os.LookupEnv(EnvSourceDateEpoch)
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s=%q: expected a non-negative number of seconds since 1970", EnvSourceDateEpoch, v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// cacheDir is where digests are cached; empty disables the cache.
func cacheDir() string {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "airlock")
}
