{
  "targets": [
    {
      "target_name": "shardfeed_memory",
      "sources": ["native/memory.c"],
      "libraries": ["-ldl"]
    }
  ]
}
