{
  "targets": [
    {
      "target_name": "shardfeed_memory",
      "sources": ["memory.c"],
      "libraries": ["-ldl"]
    }
  ]
}
