package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// fields reads the inputs of the kinds that take no trust policy, every shape checked here (as the Python runner
// does), so that an error a verifier returns is always the verifier's verdict, never a malformed request.
type fields map[string]any

func decodeFields(raw json.RawMessage) fields {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var found map[string]any
	if err := decoder.Decode(&found); err != nil || found == nil {
		panic(badRequest{fmt.Errorf("inputs is not an object: %v", err)})
	}
	return found
}

func (f fields) has(name string) bool {
	_, ok := f[name]
	return ok
}

func (f fields) get(name string) any {
	value, ok := f[name]
	if !ok {
		panic(badRequest{fmt.Errorf("inputs has no %s", name)})
	}
	return value
}

func (f fields) text(name string) string {
	text, ok := f.get(name).(string)
	if !ok {
		panic(badRequest{fmt.Errorf("inputs.%s is not a string", name)})
	}
	return text
}

func (f fields) object(name string) fields {
	found, ok := f.get(name).(map[string]any)
	if !ok {
		panic(badRequest{fmt.Errorf("inputs.%s is not an object", name)})
	}
	return found
}

func (f fields) list(name string) []any {
	found, ok := f.get(name).([]any)
	if !ok {
		panic(badRequest{fmt.Errorf("inputs.%s is not a list", name)})
	}
	return found
}

func (f fields) texts(name string) []string {
	var found []string
	for _, item := range f.list(name) {
		text, ok := item.(string)
		if !ok {
			panic(badRequest{fmt.Errorf("inputs.%s holds an item that is not a string", name)})
		}
		found = append(found, text)
	}
	return found
}

func (f fields) integer(name string) *big.Int {
	number, ok := f.get(name).(json.Number)
	value, exact := new(big.Int).SetString(string(number), 10)
	if !ok || !exact {
		panic(badRequest{fmt.Errorf("inputs.%s is not an integer", name)})
	}
	return value
}

// count is an integer input from 0 to maxRequestInteger (a threshold, a limit, a use count, an age in seconds);
// one out of range is the request's mistake, never the verifier's input (docs/conformance.md, "Integers").
func (f fields) count(name string) int64 {
	value := f.integer(name)
	if value.Sign() < 0 || value.Cmp(big.NewInt(maxRequestInteger)) > 0 {
		panic(badRequest{fmt.Errorf("inputs.%s is not an integer from 0 to %d", name, maxRequestInteger)})
	}
	return value.Int64()
}

// treeInteger is a Merkle tree size or index: a uint64, as RFC 9162 has them, so that the verifier itself refuses
// those past its bound of 2^63 - 1 (SIZE_OUT_OF_RANGE); a negative one or one past 2^64 - 1 is a bad request.
func (f fields) treeInteger(name string) uint64 {
	value := f.integer(name)
	if value.Sign() < 0 || !value.IsUint64() {
		panic(badRequest{fmt.Errorf("inputs.%s is not an integer from 0 to 2^64 - 1", name)})
	}
	return value.Uint64()
}

func decodeB64(text any, name string) []byte {
	s, ok := text.(string)
	if !ok {
		panic(badRequest{fmt.Errorf("%s is not a base64 string", name)})
	}
	data, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		panic(badRequest{fmt.Errorf("%s is not standard base64: %v", name, err)})
	}
	return data
}

func (f fields) bytes(name string) []byte { return decodeB64(f.get(name), "inputs."+name) }

func (f fields) byteList(name string) [][]byte {
	var found [][]byte
	for _, item := range f.list(name) {
		found = append(found, decodeB64(item, "inputs."+name+"[]"))
	}
	return found
}
