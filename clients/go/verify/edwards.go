package verify

import (
	"math/big"
)

// Ed25519 public keys are acceptable only as the canonical encoding (y below p, no sign bit on x = 0) of a
// curve point that is not of small order: OpenSSL verifies a signature by a small-order key (the identity among
// them) over many messages, and libraries disagree on such keys, so they verify nothing here (RFC 8032 5.1.3).

var (
	fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), fieldP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, fieldP)
	}()
	sqrtMinus1 = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(1)), 2), fieldP)
	exponent58 = new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(5)), 3)
	bigOne     = big.NewInt(1)
	bigTwo     = big.NewInt(2)
	bigThree   = big.NewInt(3)
	bigSeven   = big.NewInt(7)
)

func mod(x *big.Int) *big.Int { return x.Mod(x, fieldP) }

// acceptablePublicKey reports whether raw is a canonical Ed25519 key of large order.
func acceptablePublicKey(raw []byte) bool {
	if len(raw) != 32 {
		return false
	}
	le := make([]byte, 32)
	for i := range raw {
		le[31-i] = raw[i]
	}
	sign := le[0] >> 7
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	if y.Cmp(fieldP) >= 0 {
		return false
	}
	yy := mod(new(big.Int).Mul(y, y))
	u := mod(new(big.Int).Sub(yy, bigOne))
	v := mod(new(big.Int).Add(new(big.Int).Mul(curveD, yy), bigOne))
	// x = u v^3 (u v^7)^((p-5)/8)
	v3 := new(big.Int).Exp(v, bigThree, fieldP)
	v7 := new(big.Int).Exp(v, bigSeven, fieldP)
	x := new(big.Int).Exp(mod(new(big.Int).Mul(u, v7)), exponent58, fieldP)
	x = mod(x.Mul(x, mod(new(big.Int).Mul(u, v3))))
	check := func(x *big.Int) bool {
		vxx := mod(new(big.Int).Mul(v, mod(new(big.Int).Mul(x, x))))
		return vxx.Cmp(u) == 0
	}
	if !check(x) {
		x = mod(x.Mul(x, sqrtMinus1))
		if !check(x) {
			return false // not on the curve
		}
	}
	if x.Sign() == 0 && sign == 1 {
		return false
	}
	// 8 * point in projective coordinates: the small-order points are those it takes to (0 : 1 : 1).
	px, py, pz := x, y, big.NewInt(1)
	for i := 0; i < 3; i++ {
		px, py, pz = double(px, py, pz)
	}
	return !(px.Sign() == 0 && py.Cmp(pz) == 0)
}

// double is projective doubling on -x^2 + y^2 = 1 + d x^2 y^2 (dbl-2008-bbjlp with a = -1).
func double(x, y, z *big.Int) (*big.Int, *big.Int, *big.Int) {
	s := new(big.Int).Add(x, y)
	b := mod(s.Mul(s, s))
	c := mod(new(big.Int).Mul(x, x))
	d := mod(new(big.Int).Mul(y, y))
	e := mod(new(big.Int).Neg(c))
	f := mod(new(big.Int).Add(e, d))
	j := mod(new(big.Int).Sub(f, mod(new(big.Int).Mul(bigTwo, mod(new(big.Int).Mul(z, z))))))
	nx := mod(new(big.Int).Mul(mod(new(big.Int).Sub(new(big.Int).Sub(b, c), d)), j))
	ny := mod(new(big.Int).Mul(f, mod(new(big.Int).Sub(e, d))))
	nz := mod(new(big.Int).Mul(f, j))
	return nx, ny, nz
}
