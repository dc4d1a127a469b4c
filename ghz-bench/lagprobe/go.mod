module kvmesh/ghz-bench/lagprobe

go 1.21
