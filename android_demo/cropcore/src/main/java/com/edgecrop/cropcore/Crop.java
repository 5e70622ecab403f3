package com.edgecrop.cropcore;

/** One crop: its aspect label, box, score (saliency mass kept, minus the area cost) and rank. */
public final class Crop {
    public final String aspect;
    public final Box box;
    public final double score;
    public final int rank;

    public Crop(String aspect, Box box, double score, int rank) {
        this.aspect = aspect;
        this.box = box;
        this.score = score;
        this.rank = rank;
    }
}
