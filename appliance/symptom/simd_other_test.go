//go:build !amd64

package symptom

// have512 is never set here (no AVX-512 loop to test).
var have512 = false
