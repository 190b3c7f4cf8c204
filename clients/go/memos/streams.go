package memos

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc"
)

// chunkBytes is the size of each chunk a client stream sends (bundles, payloads, releases).
const chunkBytes = 256 << 10

// pages turns a page-fetching function into an iterator over the items of every page. Stop ranging to stop
// fetching; an error ends the sequence.
func pages[T any](fetch func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			items, next, err := fetch(token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// received turns a server stream into an iterator over its messages. The stream is opened when ranging starts and
// cancelled when ranging stops, so breaking out of the loop ends the call; an error ends the sequence.
func received[T any](ctx context.Context, open func(context.Context) (grpc.ServerStreamingClient[T], error)) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := open(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(msg, nil) {
				return
			}
		}
	}
}

// drain writes the bytes each message of a server stream carries into w; it returns the bytes written.
func drain[T any](stream iter.Seq2[*T, error], chunk func(*T) []byte, w io.Writer) (int64, error) {
	var written int64
	for msg, err := range stream {
		if err != nil {
			return written, err
		}
		n, err := w.Write(chunk(msg))
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// upload sends r over a client stream in chunks and returns the server's answer. first is the first message (its
// chunk field is set here); the later messages are made by next. The first message is sent even when r is empty.
func upload[Req, Resp any](ctx context.Context, open func(context.Context) (grpc.ClientStreamingClient[Req, Resp], error),
	first *Req, setChunk func(*Req, []byte), next func() *Req, r io.Reader) (*Resp, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return nil, err
	}
	msg := first
	buffer := make([]byte, chunkBytes)
	for {
		n, readErr := io.ReadFull(r, buffer)
		if n > 0 || msg == first {
			if msg == nil {
				msg = next()
			}
			setChunk(msg, append([]byte(nil), buffer[:n]...))
			if err := stream.Send(msg); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server ended the call early; its status comes with CloseAndRecv
				}
				return nil, err
			}
			msg = nil
		}
		if readErr == io.EOF || readErr == io.ErrUnexpectedEOF {
			break
		}
		if readErr != nil {
			return nil, readErr
		}
	}
	return stream.CloseAndRecv()
}
