package memos

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A status with an ErrorInfo detail, as the server sends it in grpc-status-details-bin, becomes an *Error that
// errors.As finds through wrapping and that status.Code still reads.
func TestErrorCarriesTheReason(t *testing.T) {
	st, err := status.New(codes.Aborted, "etag is stale").WithDetails(&errdetails.ErrorInfo{
		Reason: "ETAG_MISMATCH", Domain: "memos-grpc", Metadata: map[string]string{"name": "spaces/s/cubes/c"}})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := fmt.Errorf("updating: %w", asError(st.Err()))
	var refused *Error
	if !errors.As(wrapped, &refused) {
		t.Fatalf("errors.As found no *Error in %v", wrapped)
	}
	if refused.Code != codes.Aborted || refused.Reason != "ETAG_MISMATCH" || refused.Message != "etag is stale" ||
		refused.Metadata["name"] != "spaces/s/cubes/c" {
		t.Errorf("got %+v", refused)
	}
	if status.Code(refused) != codes.Aborted {
		t.Errorf("status.Code reads %v", status.Code(refused))
	}
	plain := asError(status.Error(codes.NotFound, "no such cube"))
	if !errors.As(plain, &refused) || refused.Reason != "" || refused.Code != codes.NotFound {
		t.Errorf("a status without ErrorInfo: got %+v", refused)
	}
}
