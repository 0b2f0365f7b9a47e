package config

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is against errors returned by Load,
// Parse and Validate.
var (
	// ErrNoAdmin means neither admin.identity nor root is set (or both are empty).
	ErrNoAdmin = errors.New("invalid admin identity: no admin identity")
	// ErrNoKeystore means the keystore section selects no supported keystore.
	ErrNoKeystore = errors.New("no keystore specified")
	// ErrNotSupported means a keystore KES supports but Keyraft does not.
	ErrNotSupported = errors.New("not supported by keyraft")
	// ErrNoSAN means the server certificate has neither a DNS nor an IP
	// subject alternative name.
	ErrNoSAN = errors.New("certificate has no DNS or IP subject alternative name")
	// ErrPasswordRequired means tls.key is encrypted but tls.password is empty.
	ErrPasswordRequired = errors.New("private key is encrypted but no tls.password is set")
)

// FieldError is an error about one config field. Path is the dotted field
// path ("cache.expiry.any", "policy.minio.identities[0]"); Line is the
// 1-based line in the YAML file, or 0 when unknown (for example for errors
// found by Validate on a Config built in code).
type FieldError struct {
	Path string
	Line int
	Err  error
}

// Error returns "config: <path>: <err>".
func (e *FieldError) Error() string { return "config: " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// EnvError reports a ${NAME} reference to an environment variable that is
// not set. Its message matches KES apart from the "config:" prefix.
type EnvError struct {
	Name string
	Line int
}

// Error returns "config: referenced env. variable 'NAME' in line 'N' not found".
func (e *EnvError) Error() string {
	return fmt.Sprintf("config: referenced env. variable '%s' in line '%d' not found", e.Name, e.Line)
}

func fieldErr(path string, line int, err error) error {
	return &FieldError{Path: path, Line: line, Err: err}
}

func fieldErrf(path string, line int, format string, args ...any) error {
	return &FieldError{Path: path, Line: line, Err: fmt.Errorf(format, args...)}
}
