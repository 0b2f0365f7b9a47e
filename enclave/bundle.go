package enclave

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// The sealed material of a key record is its keystore value; for a key
// with versions ≥ 2 it is a bundle of the keystore values of every
// version, version 1 first:
//
//	"\x00KRB" || uvarint(n) || n × (uvarint(len) || value)
//
// A single keystore value is base64 or JSON text, so it never starts with
// the magic: records of keys never rotated are exactly what they were
// before versions existed.
const bundleMagic = "\x00KRB"

var errBadBundle = errors.New("enclave: malformed key version bundle")

// encodeBundle returns the sealed material for values (one per version,
// version 1 first): values[0] itself (a copy) for one version.
func encodeBundle(values [][]byte) []byte {
	if len(values) == 1 {
		return bytes.Clone(values[0])
	}
	b := append([]byte(bundleMagic), binary.AppendUvarint(nil, uint64(len(values)))...)
	for _, v := range values {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// decodeBundle splits sealed material into the versions' values. The
// values alias b.
func decodeBundle(b []byte) ([][]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(bundleMagic))
	if !ok {
		return [][]byte{b}, nil
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n < 2 || n > uint64(len(rest)) {
		return nil, errBadBundle
	}
	rest = rest[k:]
	values := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return nil, errBadBundle
		}
		values = append(values, rest[k:k+int(l)])
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return nil, errBadBundle
	}
	return values, nil
}

// firstValue returns version 1's keystore value from sealed material
// (nil if it is malformed).
func firstValue(b []byte) []byte {
	values, err := decodeBundle(b)
	if err != nil {
		return nil
	}
	return values[0]
}

// versionEntry is the keystore entry of a key's version n ≥ 2. Version 1
// is the key's own entry (storeName), as KES stores it. Versions of the
// default enclave's keys live under the reserved prefix; those of other
// enclaves' keys in the enclave's namespace, so deleting the enclave
// deletes them. Neither is a valid key name, so no listing shows them.
func versionEntry(enclave, name string, n int) (string, error) {
	sn, err := storeName(enclave, name)
	if err != nil {
		return "", err
	}
	if enclave == DefaultEnclave {
		return reservedPrefix + "v." + name + "." + strconv.Itoa(n), nil
	}
	return sn + ".v" + strconv.Itoa(n), nil
}
