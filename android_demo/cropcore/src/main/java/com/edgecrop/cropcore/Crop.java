package com.edgecrop.cropcore;

/**
 * One crop, as edgecrop.search.Crop: its aspect, box, rank and the parts of its score
 * (score = modelMass + boostMass - areaCost).
 */
public final class Crop {
    public final AspectRatio aspect;
    public final Box box;
    public final double score, modelMass, boostMass, areaCost;
    public final int rank;

    public Crop(AspectRatio aspect, Box box, double score, double modelMass, double boostMass, double areaCost, int rank) {
        this.aspect = aspect;
        this.box = box;
        this.score = score;
        this.modelMass = modelMass;
        this.boostMass = boostMass;
        this.areaCost = areaCost;
        this.rank = rank;
    }
}
