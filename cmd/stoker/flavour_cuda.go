//go:build cuda

package main

// buildFlavour says which build this is.
const buildFlavour = "cuda build"
