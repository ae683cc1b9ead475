module example.com/tsfixture

go 1.21
