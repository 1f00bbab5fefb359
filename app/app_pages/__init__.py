"""One thin file per page: widgets -> cached loader -> library call -> chart builder -> render."""
