{
  "targets": [
    {
      "target_name": "leveldb_mmap",
      "sources": ["native/leveldb-mmap.c"],
      "libraries": ["-ldl"]
    }
  ]
}
