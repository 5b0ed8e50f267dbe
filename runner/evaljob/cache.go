package evaljob

import (
	"bufio"
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

// Cache is one key's generations: a JSONL file (the key on the first
// line, one generation per line after it) appended to as samples finish,
// so an interrupted run resumes where it stopped. Failed generations are
// not cached: a re-run tries them again. A torn last line (a crash while
// writing) is dropped on open and rewritten by the resumed run.
type Cache struct {
	path string
	mu   sync.Mutex
	f    *os.File
	gens map[key]Generation
	// Dropped is how many unreadable lines were dropped on open.
	Dropped int
}

// OpenCache opens or creates the cache of k under dir.
func OpenCache(dir string, k CacheKey) (*Cache, error) {
	if k.Release == "" || k.Suite == "" {
		return nil, errors.New("evaljob: a cache needs the release digest and the suite digest")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cache{path: filepath.Join(dir, k.ID()+".jsonl"), gens: map[key]Generation{}}
	data, err := os.ReadFile(c.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	good := 0 // bytes of whole, readable lines
	if len(data) > 0 {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
		first := true
		for sc.Scan() {
			line := sc.Bytes()
			end := good + len(line) + 1
			if end > len(data) { // no newline: torn
				c.Dropped++
				break
			}
			if first {
				var got CacheKey
				if json.Unmarshal(line, &got) != nil || got != k {
					return nil, fmt.Errorf("evaljob: cache file %s does not belong to this run's key; remove it", c.path)
				}
				first = false
				good = end
				continue
			}
			var g Generation
			if err := json.Unmarshal(line, &g); err != nil || g.Item == "" {
				c.Dropped++
				break
			}
			c.gens[key{g.Item, g.Sample}] = g
			good = end
		}
	}
	f, err := os.OpenFile(c.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(good)); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, err
	}
	c.f = f
	if good == 0 {
		b, _ := json.Marshal(k)
		if _, err := f.Write(append(b, '\n')); err != nil {
			f.Close()
			return nil, err
		}
	}
	return c, nil
}

// Path is the cache file.
func (c *Cache) Path() string { return c.path }

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
func (c *Cache) Add(g Generation) error {
	if g.Error != "" {
		return nil
	}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(append(b, '\n')); err != nil {
		return err
	}
	c.gens[key{g.Item, g.Sample}] = g
	return nil
}

// Close flushes the file to disk and closes it.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.f.Sync(); err != nil {
		c.f.Close()
		return err
	}
	return c.f.Close()
}

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
	path    string
	mu      sync.Mutex
	f       *os.File
	answers map[string]string
}

type judgeLine struct {
	Key    string `json:"key"`
	Answer string `json:"answer"`
}

// OpenJudgeCache opens or creates the judge cache under dir.
func OpenJudgeCache(dir string) (*JudgeCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &JudgeCache{path: filepath.Join(dir, "judge.jsonl"), answers: map[string]string{}}
	data, err := os.ReadFile(c.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	good := 0
	for len(data[good:]) > 0 {
		i := bytes.IndexByte(data[good:], '\n')
		if i < 0 {
			break // torn
		}
		var l judgeLine
		if json.Unmarshal(data[good:good+i], &l) != nil || l.Key == "" {
			break
		}
		c.answers[l.Key] = l.Answer
		good += i + 1
	}
	f, err := os.OpenFile(c.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(good)); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(int64(good), 0); err != nil {
		f.Close()
		return nil, err
	}
	c.f = f
	return c, nil
}

// judgeKey is the cache key of a question to a judge model.
func judgeKey(model string, msgs []evals.Message) string {
	h := sha256.New()
	b, _ := json.Marshal(struct {
		Model    string          `json:"model"`
		Messages []evals.Message `json:"messages"`
	}{model, msgs})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (c *JudgeCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[key]
	return a, ok
}

func (c *JudgeCache) add(key, answer string) error {
	b, err := json.Marshal(judgeLine{Key: key, Answer: answer})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(append(b, '\n')); err != nil {
		return err
	}
	c.answers[key] = answer
	return nil
}

// Len is the number of answers cached.
func (c *JudgeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.answers)
}

// Close closes the file.
func (c *JudgeCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.f.Sync(); err != nil {
		c.f.Close()
		return err
	}
	return c.f.Close()
}
