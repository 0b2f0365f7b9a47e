package crypto

import "testing"

func benchKey(b *testing.B, typ KeyType) SecretKey {
	b.Helper()
	k, err := GenerateSecretKey(typ, nil)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func BenchmarkEncrypt(b *testing.B) {
	for _, typ := range allTypes {
		b.Run(typ.String(), func(b *testing.B) {
			k, pt := benchKey(b, typ), make([]byte, 32)
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Encrypt(pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, typ := range allTypes {
		b.Run(typ.String(), func(b *testing.B) {
			k := benchKey(b, typ)
			ct, err := k.Encrypt(make([]byte, 32), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(32)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Decrypt(ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
