{
  "targets": [
    {
      "target_name": "shardfeed_native",
      "sources": ["addon.c", "memory.c", "number-run.c", "read-runs.c", "hash-file.c"],
      "libraries": ["-ldl"]
    }
  ]
}
