package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/airlock-dev/airlock/registry/sign"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(newKeyGenerateCmd(g))
	return cmd
}

func newKeyGenerateCmd(g *globals) *cobra.Command {
	var prefix string
	var force bool
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Create a cosign-compatible key pair (NAME.key, NAME.pub)",
		Long: `Generate creates an ECDSA P-256 key pair in cosign's formats: NAME.key,
the private key encrypted with a password (scrypt and secretbox, as cosign
generate-key-pair writes it), and NAME.pub, the public key (PEM). cosign
sign and verify read them, and airlock reads keys cosign made.

The password comes from AIRLOCK_PASSWORD, else COSIGN_PASSWORD (set and
empty means no password); without either, it is asked for twice on the
terminal. Existing files are not overwritten unless --force is given.`,
		Example: `  airlock key generate                      # cosign.key, cosign.pub
  AIRLOCK_PASSWORD=… airlock key generate --output-key-prefix release`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyPath, pubPath := prefix+".key", prefix+".pub"
			if !force {
				for _, p := range []string{keyPath, pubPath} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s exists; remove it or pass --force", p)
					} else if !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
			}
			pw, err := newPassword(g)
			if err != nil {
				return err
			}
			priv, pub, err := sign.GenerateKeyPair(pw)
			if err != nil {
				return err
			}
			if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Private key written to %s\nPublic key written to %s\n", keyPath, pubPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "cosign", "write PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return cmd
}

// newPassword reads a new key's password: from the environment, else
// twice from the terminal.
func newPassword(g *globals) ([]byte, error) {
	if pw, ok := passwordFromEnv(); ok {
		return pw, nil
	}
	fd, ok := terminalFD(g)
	if !ok {
		return nil, fmt.Errorf("no password: set %s (empty for none) or run on a terminal", EnvPassword)
	}
	fmt.Fprint(g.stderr, "Enter password for private key: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(g.stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(g.stderr, "Enter password for private key again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(g.stderr)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a, b) {
		return nil, errors.New("passwords do not match")
	}
	return a, nil
}

// keyPassword reads an existing key's password: from the environment,
// else once from the terminal; with neither, it tries the empty password.
func keyPassword(g *globals) ([]byte, error) {
	if pw, ok := passwordFromEnv(); ok {
		return pw, nil
	}
	fd, ok := terminalFD(g)
	if !ok {
		return nil, nil
	}
	fmt.Fprint(g.stderr, "Enter password for private key: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(g.stderr)
	return pw, err
}

// terminalFD is stdin's descriptor when stdin is a terminal.
func terminalFD(g *globals) (int, bool) {
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// loadSigner reads a private key file, asking for its password as needed.
func loadSigner(g *globals, path string) (*sign.Signer, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pw, err := keyPassword(g)
	if err != nil {
		return nil, err
	}
	s, err := sign.LoadSigner(pemBytes, pw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
