package evaljob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/airlock-dev/airlock/evals"
)

// CacheKey is what makes two runs' generations interchangeable: the
// release digest, the suite digest, the engine (its kind; for the process
// engine also the serving command, which decides how the release is
// served), the model asked for ("" for the server's own), the seed, and
// the samples asked for. Two runs with the same key send the same requests
// to the same release served the same way, so the second need not pay
// again. An endpoint's URL is not part of it: the release digest names
// what answers.
type CacheKey struct {
	Release string `json:"release"`
	Suite   string `json:"suite"`
	Engine  string `json:"engine"`
	Command string `json:"command,omitempty"`
	Model   string `json:"model"`
	Seed    uint64 `json:"seed"`
	Samples int    `json:"samples"`
}

// ID is the key's file name: the sha256 of its JSON.
func (k CacheKey) ID() string {
	b, _ := json.Marshal(k)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// jsonlFile is an append-only JSON Lines file that keeps only whole,
// readable lines: on open, lines are read until the first torn or
// unreadable one, the file is cut back to what was read, and later writes
// append whole lines. Both caches are one.
type jsonlFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// openJSONL opens or creates path, hands each whole line to each (which
// says whether it is readable, or fails the open), and returns the file
// positioned after the last readable line, with how many lines were
// dropped.
func openJSONL(path string, each func(line []byte) (bool, error)) (*jsonlFile, int, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	good, dropped := 0, 0
	for good < len(data) {
		i := bytes.IndexByte(data[good:], '\n')
		if i < 0 { // no newline: torn
			dropped++
			break
		}
		ok, err := each(data[good : good+i])
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			dropped++
			break
		}
		good += i + 1
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, err
	}
	if err := f.Truncate(int64(good)); err != nil {
		f.Close()
		return nil, 0, err
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, 0, err
	}
	return &jsonlFile{path: path, f: f}, dropped, nil
}

// append writes v as one line, at once.
func (j *jsonlFile) append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err = j.f.Write(append(b, '\n'))
	return err
}

// close flushes the file to disk and closes it.
func (j *jsonlFile) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Sync(); err != nil {
		j.f.Close()
		return err
	}
	return j.f.Close()
}

// Cache is one key's generations: a JSONL file (the key on the first
// line, one generation per line after it) appended to as samples finish,
// so an interrupted run resumes where it stopped. Failed generations are
// not cached: a re-run tries them again. A torn last line (a crash while
// writing) is dropped on open and rewritten by the resumed run.
type Cache struct {
	file *jsonlFile
	mu   sync.Mutex
	gens map[key]Generation
	// Dropped is how many unreadable lines were dropped on open.
	Dropped int
}

// OpenCache opens or creates the cache of k under dir.
func OpenCache(dir string, k CacheKey) (*Cache, error) {
	if k.Release == "" || k.Suite == "" {
		return nil, errors.New("evaljob: a cache needs the release digest and the suite digest")
	}
	c := &Cache{gens: map[key]Generation{}}
	path := filepath.Join(dir, k.ID()+".jsonl")
	first := true
	file, dropped, err := openJSONL(path, func(line []byte) (bool, error) {
		if first {
			first = false
			var got CacheKey
			if json.Unmarshal(line, &got) != nil || got != k {
				return false, fmt.Errorf("evaljob: cache file %s does not belong to this run's key; remove it", path)
			}
			return true, nil
		}
		var g Generation
		if err := json.Unmarshal(line, &g); err != nil || g.Item == "" {
			return false, nil
		}
		c.gens[key{g.Item, g.Sample}] = g
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	c.file, c.Dropped = file, dropped
	if first { // a new file: the key goes first
		if err := file.append(k); err != nil {
			_ = file.close() // the write's error is the one to report
			return nil, err
		}
	}
	return c, nil
}

// Path is the cache file.
func (c *Cache) Path() string { return c.file.path }

// Generations returns a copy of what the cache holds.
func (c *Cache) Generations() map[key]Generation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[key]Generation, len(c.gens))
	for k, g := range c.gens {
		out[k] = g
	}
	return out
}

// Len is the number of generations cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.gens)
}

// Add records a finished generation: one whole line, written at once.
// Failed generations are not recorded.
func (c *Cache) Add(g Generation) error {
	if g.Error != "" {
		return nil
	}
	if err := c.file.append(g); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[key{g.Item, g.Sample}] = g
	return nil
}

// Close flushes the file to disk and closes it.
func (c *Cache) Close() error { return c.file.close() }

// Model is the served model of the cached generations, when they name
// one.
func (c *Cache) Model() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.gens {
		if g.Model != "" {
			return g.Model
		}
	}
	return ""
}

// JudgeCache keeps a judge model's answers by (model, prompt), so a re-run
// of an eval with rubrics does not ask the judge again. Like Cache it is a
// JSONL file appended to as answers come, with a torn last line dropped.
type JudgeCache struct {
	file    *jsonlFile
	mu      sync.Mutex
	answers map[string]string
}

type judgeLine struct {
	Key    string `json:"key"`
	Answer string `json:"answer"`
}

// OpenJudgeCache opens or creates the judge cache under dir.
func OpenJudgeCache(dir string) (*JudgeCache, error) {
	c := &JudgeCache{answers: map[string]string{}}
	file, _, err := openJSONL(filepath.Join(dir, "judge.jsonl"), func(line []byte) (bool, error) {
		var l judgeLine
		if json.Unmarshal(line, &l) != nil || l.Key == "" {
			return false, nil
		}
		c.answers[l.Key] = l.Answer
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	c.file = file
	return c, nil
}

// judgeKey is the cache key of a question to a judge model.
func judgeKey(model string, msgs []evals.Message) string {
	b, _ := json.Marshal(struct {
		Model    string          `json:"model"`
		Messages []evals.Message `json:"messages"`
	}{model, msgs})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (c *JudgeCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[key]
	return a, ok
}

func (c *JudgeCache) add(key, answer string) error {
	if err := c.file.append(judgeLine{Key: key, Answer: answer}); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers[key] = answer
	return nil
}

// Len is the number of answers cached.
func (c *JudgeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.answers)
}

// Close flushes the file to disk and closes it.
func (c *JudgeCache) Close() error { return c.file.close() }
