"""Data: dataset layouts (BraTS 2021/2023/2024, MSD Task01) and their label schemes, NIfTI reading, the cache, crops
and loader, synthetic cohorts."""
