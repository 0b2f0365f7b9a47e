package crypto

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf field numbers of the KES stored-key messages (proto3, package
// miniohq.kms; spec §5.5):
//
//	message KeyVersion { SecretKey Key = 1; HMACKey HMACKey = 2;
//	                     google.protobuf.Timestamp CreatedAt = 3; string CreatedBy = 4; }
//	message SecretKey  { bytes Key = 1; uint32 Type = 2; }
//	message HMACKey    { bytes Key = 1; uint32 Hash = 2; }
//	message Timestamp  { int64 seconds = 1; int32 nanos = 2; }
const (
	pbVersionKey       protowire.Number = 1
	pbVersionHMAC      protowire.Number = 2
	pbVersionCreatedAt protowire.Number = 3
	pbVersionCreatedBy protowire.Number = 4

	pbKeyBytes protowire.Number = 1 // SecretKey.Key and HMACKey.Key
	pbKeyKind  protowire.Number = 2 // SecretKey.Type and HMACKey.Hash

	pbTimeSeconds protowire.Number = 1
	pbTimeNanos   protowire.Number = 2

	// pbHashSHA256 is the HMACKey.Hash value of SHA-256.
	pbHashSHA256 = 1
)

// errInvalidUTF8 mirrors the proto3 rule that string fields hold valid UTF-8.
var errInvalidUTF8 = errors.New("created_by is not valid UTF-8")

// marshalKeyVersionPB encodes v (type and HMAC already validated by the
// caller) with fields in ascending order and proto3 zero values omitted, the
// same bytes the reference protobuf encoder produces. CreatedBy must be valid
// UTF-8; invalid bytes are still written here, so callers check first.
func marshalKeyVersionPB(v *KeyVersion) []byte {
	var key, mac, ts []byte
	key = protowire.AppendTag(key, pbKeyBytes, protowire.BytesType)
	key = protowire.AppendBytes(key, v.Key.Key[:])
	key = protowire.AppendTag(key, pbKeyKind, protowire.VarintType)
	key = protowire.AppendVarint(key, uint64(v.Key.Type))

	mac = protowire.AppendTag(mac, pbKeyBytes, protowire.BytesType)
	mac = protowire.AppendBytes(mac, v.HMAC.Key[:])
	mac = protowire.AppendTag(mac, pbKeyKind, protowire.VarintType)
	mac = protowire.AppendVarint(mac, pbHashSHA256)

	if s := v.CreatedAt.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, pbTimeSeconds, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if n := v.CreatedAt.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, pbTimeNanos, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(int64(n)))
	}

	var out []byte
	out = protowire.AppendTag(out, pbVersionKey, protowire.BytesType)
	out = protowire.AppendBytes(out, key)
	out = protowire.AppendTag(out, pbVersionHMAC, protowire.BytesType)
	out = protowire.AppendBytes(out, mac)
	out = protowire.AppendTag(out, pbVersionCreatedAt, protowire.BytesType)
	out = protowire.AppendBytes(out, ts)
	if v.CreatedBy != "" {
		out = protowire.AppendTag(out, pbVersionCreatedBy, protowire.BytesType)
		out = protowire.AppendString(out, v.CreatedBy)
	}
	clear(key)
	clear(mac)
	return out
}

// pbKey accumulates a SecretKey or HMACKey message. Repeated occurrences of
// an embedded message merge, as protobuf requires.
type pbKey struct {
	key  []byte
	kind uint64
}

// pbTime accumulates a google.protobuf.Timestamp message.
type pbTime struct {
	seconds int64
	nanos   int32
}

// unmarshalKeyVersionPB decodes a protobuf KeyVersion. Unknown fields are
// skipped; a known field with the wrong wire type is an error. Both sub-keys
// must be 32 bytes with a known type/hash.
func unmarshalKeyVersionPB(b []byte) (KeyVersion, error) {
	var (
		key, mac  pbKey
		ts        pbTime
		createdBy string
	)
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64) error {
		switch num {
		case pbVersionKey:
			return decodeSub(typ, val, key.decode)
		case pbVersionHMAC:
			return decodeSub(typ, val, mac.decode)
		case pbVersionCreatedAt:
			return decodeSub(typ, val, ts.decode)
		case pbVersionCreatedBy:
			if typ != protowire.BytesType {
				return fmt.Errorf("field %d: wire type %d", num, typ)
			}
			if !utf8.Valid(val) {
				return errInvalidUTF8
			}
			createdBy = string(val)
		}
		return nil
	})
	if err != nil {
		return KeyVersion{}, err
	}

	var v KeyVersion
	t := KeyType(key.kind)
	if key.kind > 0xff || !t.valid() {
		return KeyVersion{}, fmt.Errorf("%w: secret key type %d", ErrUnsupportedAlgorithm, key.kind)
	}
	if len(key.key) != KeySize {
		return KeyVersion{}, fmt.Errorf("%w: secret key has %d bytes", ErrInvalidKeySize, len(key.key))
	}
	if mac.kind != pbHashSHA256 {
		return KeyVersion{}, fmt.Errorf("%w: HMAC hash %d", ErrUnsupportedAlgorithm, mac.kind)
	}
	if len(mac.key) != KeySize {
		return KeyVersion{}, fmt.Errorf("%w: HMAC key has %d bytes", ErrInvalidKeySize, len(mac.key))
	}
	v.Key.Type = t
	copy(v.Key.Key[:], key.key)
	v.HMAC = new(HMACKey)
	copy(v.HMAC.Key[:], mac.key)
	v.CreatedAt = time.Unix(ts.seconds, int64(ts.nanos)).UTC()
	v.CreatedBy = createdBy
	return v, nil
}

// walkFields calls fn for every field of the protobuf message b. For varint
// fields x holds the value; for length-delimited fields val holds the
// payload (aliasing b); for other wire types both are zero.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, val []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("protobuf tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var (
			val []byte
			x   uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("protobuf field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, val, x); err != nil {
			return err
		}
	}
	return nil
}

// decodeSub decodes an embedded message field with the given field decoder.
func decodeSub(typ protowire.Type, val []byte, field func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	if typ != protowire.BytesType {
		return fmt.Errorf("embedded message: wire type %d", typ)
	}
	return walkFields(val, field)
}

// decode handles one field of a SecretKey or HMACKey message.
func (k *pbKey) decode(num protowire.Number, typ protowire.Type, val []byte, x uint64) error {
	switch num {
	case pbKeyBytes:
		if typ != protowire.BytesType {
			return fmt.Errorf("key bytes: wire type %d", typ)
		}
		k.key = val
	case pbKeyKind:
		if typ != protowire.VarintType {
			return fmt.Errorf("key type: wire type %d", typ)
		}
		k.kind = uint64(uint32(x)) // uint32 field: upper bits are discarded
	}
	return nil
}

// decode handles one field of a google.protobuf.Timestamp message.
func (t *pbTime) decode(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
	switch num {
	case pbTimeSeconds:
		if typ != protowire.VarintType {
			return fmt.Errorf("timestamp seconds: wire type %d", typ)
		}
		t.seconds = int64(x)
	case pbTimeNanos:
		if typ != protowire.VarintType {
			return fmt.Errorf("timestamp nanos: wire type %d", typ)
		}
		t.nanos = int32(x)
	}
	return nil
}
