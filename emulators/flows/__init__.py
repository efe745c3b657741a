"""Multi-stage flow routing (seed 003 [0045]-[0085]): INODE, ANODE and MNODE kinds and their flow engine."""
